package token

import (
	"fmt"
	"time"
)

// UnavailableError says why the Manager has no valid token for an account.
// The handler turns it into a WeChat-shaped error for the client. It holds
// no token or secret.
type UnavailableError struct {
	// Account is the account's configured name.
	Account string
	// Reason says what is wrong, for people.
	Reason string
	// Errcode is the errcode the token endpoint answered, if any.
	Errcode int
	// Ticket marks a JS-SDK ticket's error (Account is then
	// "<account>/<type>").
	Ticket bool
	// Until is when the Manager will try again; zero when it tries at the
	// next request.
	Until time.Time
}

func (e *UnavailableError) Error() string {
	what := "access_token"
	if e.Ticket {
		what = "ticket"
	}
	msg := fmt.Sprintf("no valid %s for account %q: %s", what, e.Account, e.Reason)
	if !e.Until.IsZero() {
		msg += "; next attempt at " + e.Until.UTC().Format(time.RFC3339)
	}
	return msg
}
