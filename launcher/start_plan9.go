package launcher

// Plan 9 reports errors as strings; the generic hints serve there.

func isDirError(error) bool    { return false }
func isNoExecError(error) bool { return false }
