package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// Store is storage shared by every gateway of a cluster, and kept across
// restarts. Its method set is a subset of certmagic.Storage, so any Caddy
// storage module serves as one. Load answers an error wrapping
// fs.ErrNotExist for a key it does not hold.
//
// Lock must exclude other processes for the refresh protocol to hold one
// token per account across a cluster; a storage whose Lock does nothing
// still shares tokens, but two instances may then refresh at once.
type Store interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
}

// storePrefix is where token records live in the Store.
const storePrefix = "wechat/tokens/"

// maxLifetime is the longest plausible token lifetime (WeChat's tokens
// live 7200 s at most), and maxClockSkew how far ahead of this instance's
// clock another instance's fetch time may be.
const (
	maxLifetime  = 3 * time.Hour
	maxClockSkew = 5 * time.Minute
)

// recordVersion is the format version of stored records.
const recordVersion = 1

// record is what the Store holds for an account: its token, never the
// secret.
type record struct {
	Version    int       `json:"v"`
	Kind       Kind      `json:"kind"`
	AppID      string    `json:"appid"`
	Endpoint   Endpoint  `json:"endpoint"`
	Token      string    `json:"access_token"`
	Fetched    time.Time `json:"fetched"`
	Expires    time.Time `json:"expires"`
	Generation uint64    `json:"generation"`
	// HeldToExpiry: the ticket's endpoint hands it back until it expires
	// (Token.heldToExpiry), so that no instance asks for the next early.
	HeldToExpiry bool `json:"held_to_expiry,omitempty"`
}

func recordKey(a *Account) string { return storePrefix + a.Key() + ".json" }
func lockName(a *Account) string  { return storePrefix + a.Key() }

// errStoreMissing says the Store holds no record for the account.
var errStoreMissing = errors.New("no stored token")

// loadRecord reads and checks the account's record. A record that does not
// parse, belongs to another account, or holds something that is not a
// token is reported as a *badRecordError, never returned as a token.
func loadRecord(ctx context.Context, s Store, a *Account, now time.Time) (*Token, error) {
	raw, err := s.Load(ctx, recordKey(a))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errStoreMissing
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &badRecordError{why: fmt.Sprintf("not a token record (%d bytes)", len(raw))}
	}
	switch {
	case r.Version != recordVersion:
		return nil, &badRecordError{why: fmt.Sprintf("format version %d", r.Version)}
	case r.Kind != a.Kind || r.AppID != a.AppID || r.Endpoint != a.Endpoint:
		return nil, &badRecordError{why: "it belongs to another account"}
	case !plausibleToken(r.Token):
		return nil, &badRecordError{why: "it holds no usable token"}
	case !r.Expires.After(r.Fetched) || r.Expires.Sub(r.Fetched) > maxLifetime:
		return nil, &badRecordError{why: "its lifetime is implausible"}
	case r.Fetched.After(now.Add(maxClockSkew)):
		return nil, &badRecordError{why: "it was fetched in the future"}
	}
	return &Token{Value: r.Token, Fetched: r.Fetched, Expires: r.Expires, Generation: r.Generation,
		untilExpiry: a.Endpoint.untilExpiry(), heldToExpiry: r.HeldToExpiry}, nil
}

// saveRecord writes the account's record.
func saveRecord(ctx context.Context, s Store, a *Account, t *Token) error {
	raw, err := json.Marshal(record{
		Version: recordVersion, Kind: a.Kind, AppID: a.AppID, Endpoint: a.Endpoint,
		Token: t.Value, Fetched: t.Fetched, Expires: t.Expires, Generation: t.Generation,
		HeldToExpiry: t.heldToExpiry,
	})
	if err != nil {
		return err
	}
	return s.Store(ctx, recordKey(a), raw)
}

// badRecordError is a stored record that cannot be used.
type badRecordError struct{ why string }

func (e *badRecordError) Error() string { return "ignoring the stored token record: " + e.why }
