// Package launcher runs the child program that runsecrets exists to start:
// it builds the child's environment, writes --file secrets to a private
// directory, and either replaces the current process with the child or
// supervises it.
//
// The contract:
//
//   - BuildEnv builds the child environment exactly once, in a fixed
//     precedence order (inherited, then env files, then secrets, then
//     runsecrets' own runtime variables), with duplicates removed, NUL bytes
//     rejected and the result sorted by name.
//   - On Unix, Exec does not return on success: the process is replaced by
//     the child (execve), which keeps the PID, receives signals natively and
//     exits with its own status. On other systems Exec spawns the child,
//     waits, and returns its exit code. Either way a command that cannot be
//     started yields a *StartError whose Kind tells the caller which exit
//     status to use.
//   - Supervise is the entrypoint (PID 1) mode: the child runs in its own
//     process group, the usual termination and job signals are forwarded to
//     that group, every child re-parented to this process is reaped, and
//     Supervise returns the child's exit code, or 128+N when signal N killed
//     it. While Supervise runs it owns every child of the process: nothing
//     else in the program may start and wait for child processes.
//   - Masker replaces secret values in a byte stream with "*****".
//   - WriteFiles and RemoveFiles manage the 0700 directory of 0600 files
//     behind --file.
//
// The package is a library: it never prints, never exits, and takes every
// input (the inherited environment, the child's PATH, stdio) as an argument
// rather than reading process-global state. Errors never contain a secret
// value; they name variables, layers and commands only.
package launcher
