// Package resolve turns secret mappings into values.
//
// A reference (REF) names one secret in one of five forms: NAME, NAME/VERSION,
// a full Key Vault secret identifier, or the two @Microsoft.KeyVault(...) forms.
// Mappings (ENV=REF) come from flags, map files, RUNSECRETS_MAP and references
// found in the environment; they are merged with their provenance, and the same
// ENV mapped to two different references is an error naming both places.
//
// Resolution is all or nothing: every distinct secret is fetched once, every
// failure is collected, and either every mapping gets its value or the caller
// gets an error listing each failure (FetchEach reports every outcome instead,
// for check). Nothing here prints or exits.
//
// It also stores secrets, for the set verb: KeyVault.Set makes a new version
// and KeyVault.List lists attributes, never values; SetLocal updates the local
// secrets file in place, the only file a value is ever written to. DotenvValue
// writes a value so that godotenv reads it back byte for byte, or refuses it.
package resolve
