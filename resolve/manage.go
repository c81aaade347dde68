package resolve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// MaxValueBytes is the largest secret value Key Vault stores (25 KB).
const MaxValueBytes = 25 * 1024

// MaxContentType is the longest content type Key Vault stores.
const MaxContentType = 255

// CheckValue says why a value cannot be stored as a secret, or returns nil:
// it must not be empty, must fit Key Vault's 25 KB, and must be valid UTF-8,
// since Key Vault values are JSON strings and anything else would not come
// back byte for byte. Its text describes the value, never quotes it.
func CheckValue(value string) error {
	switch {
	case value == "":
		return errors.New("the value is empty")
	case len(value) > MaxValueBytes:
		return fmt.Errorf("the value is %d bytes; Key Vault stores at most %d", len(value), MaxValueBytes)
	case !utf8.ValidString(value):
		return errors.New("the value is not valid UTF-8 text; Key Vault stores text only")
	}
	return nil
}

// SetOptions are what Set stores with a value. Zero fields are not set.
type SetOptions struct {
	ContentType string
	Tags        map[string]string
	NotBefore   time.Time
	Expires     time.Time
}

// Set stores value as a new version of secret name in the vault at
// vaultURL (a new secret when there is none), with the provider's retries,
// and returns the new version's attributes, without the value. Retrying
// after a failure that left the outcome unknown may store two identical
// versions; the later one is current either way.
func (k *KeyVault) Set(ctx context.Context, vaultURL, name, value string, o SetOptions) (Secret, *Failure) {
	v, err := k.vault(vaultURL)
	if err != nil {
		return Secret{}, &Failure{Kind: KindUsage, Cause: "cannot use this vault URL", Detail: err.Error()}
	}
	p := azsecrets.SetSecretParameters{Value: &value}
	if o.ContentType != "" {
		p.ContentType = &o.ContentType
	}
	if len(o.Tags) > 0 {
		p.Tags = make(map[string]*string, len(o.Tags))
		for key, val := range o.Tags {
			p.Tags[key] = &val
		}
	}
	if !o.NotBefore.IsZero() || !o.Expires.IsZero() {
		p.SecretAttributes = &azsecrets.SecretAttributes{}
		if !o.NotBefore.IsZero() {
			p.SecretAttributes.NotBefore = &o.NotBefore
		}
		if !o.Expires.IsZero() {
			p.SecretAttributes.Expires = &o.Expires
		}
	}
	var s Secret
	f := k.retry(ctx, nil, "set "+name+" in "+vaultURL, accessWrite, func(ctx context.Context) error {
		start := time.Now()
		resp, err := v.SetSecret(ctx, name, p, nil)
		if err != nil {
			return err
		}
		var ok bool
		if s, ok = fromBundle(resp.Secret); !ok {
			return errMalformed
		}
		s.Value = ""
		k.log.Debug("set", "vault", vaultURL, "secret", s.Name, "version", s.Version, "took", time.Since(start).Round(time.Millisecond))
		return nil
	})
	if f != nil {
		return Secret{}, f
	}
	return s, nil
}

// List returns the attributes of every secret in the vault at vaultURL,
// following every page, sorted by name; never a value (the listing has
// none). A failed page is retried by listing again from the start: the SDK's
// pager cannot resume after an error.
func (k *KeyVault) List(ctx context.Context, vaultURL string) ([]Secret, *Failure) {
	v, err := k.vault(vaultURL)
	if err != nil {
		return nil, &Failure{Kind: KindUsage, Cause: "cannot use this vault URL", Detail: err.Error()}
	}
	var out []Secret
	f := k.retry(ctx, nil, "list "+vaultURL, accessList, func(ctx context.Context) error {
		out = out[:0]
		start, pages := time.Now(), 0
		pager := v.NewListSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			pages++
			for _, p := range page.Value {
				if p == nil || p.ID == nil {
					return errMalformed
				}
				out = append(out, fromProperties(p))
			}
		}
		k.log.Debug("listed", "vault", vaultURL, "secrets", len(out), "pages", pages, "took", time.Since(start).Round(time.Millisecond))
		return nil
	})
	if f != nil {
		return nil, f
	}
	slices.SortFunc(out, func(a, b Secret) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return out, nil
}

func fromProperties(p *azsecrets.SecretProperties) Secret {
	return withAttributes(p.ID, p.Attributes, p.ContentType, p.Tags)
}
