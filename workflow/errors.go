package workflow

import (
	"fmt"
	"strings"
)

// Error is a refused transition. Code is a stable identifier (the JSON API
// returns it as error.code); Message tells the person what is wrong.
type Error struct {
	// Code identifies the kind of refusal, e.g. "already_acted".
	Code string
	// Message explains this refusal in plain words.
	Message string
	// FR says it in French when the kind's French words (package
	// problem) would lose what the person must fix; empty otherwise.
	FR string
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, ErrAlreadyActed) match any refusal of that kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// The kinds of refusal; compare with errors.Is.
var (
	ErrInvalidDraft     = &Error{Code: "invalid_envelope", Message: "the envelope is not valid"}
	ErrUnknownRecipient = &Error{Code: "unknown_recipient", Message: "no such recipient"}
	ErrEnded            = &Error{Code: "envelope_ended", Message: "the envelope has ended"}
	ErrDeadlinePassed   = &Error{Code: "deadline_passed", Message: "the deadline has passed"}
	ErrCompleting       = &Error{Code: "completing", Message: "every step is done; the envelope is being completed"}
	ErrNotYourTurn      = &Error{Code: "not_your_turn", Message: "an earlier step is not done yet"}
	ErrAlreadyActed     = &Error{Code: "already_acted", Message: "the recipient has already acted"}
	ErrWrongRole        = &Error{Code: "wrong_role", Message: "the recipient's role does not allow this action"}
	ErrTooManyCodes     = &Error{Code: "too_many_codes", Message: "too many codes were requested"}
	ErrNoCode           = &Error{Code: "no_code", Message: "no code is outstanding"}
	ErrCodeExpired      = &Error{Code: "code_expired", Message: "the code has expired"}
	ErrWrongCode        = &Error{Code: "wrong_code", Message: "the code is wrong"}
	ErrMalformedCode    = &Error{Code: "malformed_code", Message: "a code is 6 digits"}
	ErrNotVerified      = &Error{Code: "code_required", Message: "a verified one-time code is required"}
	ErrReasonRequired   = &Error{Code: "reason_required", Message: "a reason is required"}
	ErrNotDue           = &Error{Code: "not_due", Message: "the timer is not due"}
	ErrNotCompleting    = &Error{Code: "not_completing", Message: "steps remain to be done"}
	ErrStaleDocument    = &Error{Code: "document_changed", Message: "the document changed while the signature was made"}
	ErrNoDelegation     = &Error{Code: "delegation_disabled", Message: "delegation is not allowed"}
	ErrBadDelegate      = &Error{Code: "invalid_delegate", Message: "the delegate cannot be accepted"}
	ErrAlreadySealed    = &Error{Code: "already_sealed", Message: "the document is sealed already"}
	ErrNothingToResend  = &Error{Code: "nothing_to_resend", Message: "no mail is due to this address now"}
	ErrReminderTooSoon  = &Error{Code: "reminder_too_soon", Message: "a reminder went out less than an hour ago"}
)

func errorf(kind *Error, format string, args ...any) error {
	return &Error{Code: kind.Code, Message: fmt.Sprintf(format, args...)}
}

// CodeDigits is how many digits a one-time code has.
const CodeDigits = 6

// CheckCodeFormat refuses what cannot be a code before it is checked, so
// that a typing slip ("12ab", a digit missing) does not use one of the
// code's tries.
func CheckCodeFormat(code string) error {
	if len(code) != CodeDigits || strings.Trim(code, "0123456789") != "" {
		return refusal(ErrMalformedCode, "%q is not a code: a code is %d digits, as in the mail or text message",
			"« %s » n'est pas un code : un code a %d chiffres, comme dans le message reçu", code, CodeDigits)
	}
	return nil
}

// refusal is errorf in English and French, formatted with the same args.
func refusal(kind *Error, en, fr string, args ...any) error {
	return &Error{Code: kind.Code, Message: fmt.Sprintf(en, args...), FR: fmt.Sprintf(fr, args...)}
}
