// Package runctx decides where runsecrets runs: which vault serves the
// secrets and which identity reads them.
//
// Detect applies these rules in order; the first that applies wins:
//
//  1. a local secrets file (--secrets-file, RUNSECRETS_SECRETS_FILE): fully
//     offline, no Azure call at all;
//  2. an explicit vault (--vault-url, RUNSECRETS_VAULT_URL, AZURE_KEYVAULT_URL);
//  3. an Azure ML job: AZUREML_ARM_SUBSCRIPTION + AZUREML_ARM_RESOURCEGROUP +
//     AZUREML_ARM_WORKSPACE_NAME, else AZUREML_WORKSPACE_SCOPE, else an
//     azureml:// MLFLOW_TRACKING_URI;
//  4. a workspace config.json (--workspace-config, else the six file names
//     searched from the working directory up to the root);
//  5. otherwise an error listing every place looked at.
//
// For rules 3 and 4 the vault is the workspace's default Key Vault, which
// DiscoverVault reads from Azure Resource Manager with the same identity.
// The identity is the Azure ML compute's managed identity when MSI_ENDPOINT
// and MSI_SECRET are set, else azidentity's DefaultAzureCredential.
//
// Every fact remembers where it came from, so errors and `runsecrets
// context` can say it. Detect makes no network call and reads its
// environment and files only through its Inputs.
package runctx
