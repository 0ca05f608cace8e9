// Package notify lets any component talk to the shell without importing it:
// show a toast, or ask for the credit balance to be fetched again.
package notify

import (
	"errors"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/fluxforge/fluxforge/app/core"
)

// Kind is a toast's tone.
type Kind string

const (
	Info    Kind = "info"
	Success Kind = "success"
	Error   Kind = "error"
)

// The action names the shell handles.
const (
	ActionToast          = "fluxforge/toast"
	ActionRefreshCredits = "fluxforge/refresh-credits"
)

// Toast is one message for the user.
type Toast struct {
	Kind    Kind
	Message string
}

// Show asks the shell to show a toast. Safe from any goroutine.
func Show(ctx app.Context, kind Kind, message string) {
	ctx.NewActionWithValue(ActionToast, Toast{Kind: kind, Message: message})
}

// Done shows a success toast.
func Done(ctx app.Context, message string) { Show(ctx, Success, message) }

// Fail shows err as an error toast, in words the user can act on.
func Fail(ctx app.Context, err error) { Show(ctx, Error, Message(err)) }

// RefreshCredits asks the shell to fetch the credit balance again, e.g.
// after a submit that cost credits.
func RefreshCredits(ctx app.Context) { ctx.NewAction(ActionRefreshCredits) }

// Message is the sentence a user sees for err: the API's own advice, the
// fields a validation names, or what storage could not do.
func Message(err error) string {
	var ae *core.APIError
	var ve *core.ValidationError
	var se *core.StorageError
	var ce *core.ConfigError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ae):
		return ae.Message
	case errors.As(err, &ve):
		return "Check the form: " + ve.Join(" ", "; ") + "."
	case errors.As(err, &se):
		return "Your browser could not save or read your work (" + se.Err.Error() + ")."
	case errors.As(err, &ce):
		return "The setting " + ce.Key + " is not valid: " + ce.Err.Error() + "."
	default:
		return err.Error()
	}
}
