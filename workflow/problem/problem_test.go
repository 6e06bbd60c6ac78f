package problem

import (
	"errors"
	"fmt"
	"testing"
)

func TestText(t *testing.T) {
	p := New("%q is not an email address", "« %s » n'est pas une adresse e-mail", "marie@")
	if got, want := p.In("fr"), "« marie@ » n'est pas une adresse e-mail"; got != want {
		t.Errorf("In(fr) = %q, want %q", got, want)
	}
	if got, want := p.In("en"), `"marie@" is not an email address`; got != want {
		t.Errorf("In(en) = %q, want %q", got, want)
	}
	if p.In("") != p.EN || p.Error() != p.EN {
		t.Errorf("English is the default and the error text: %q %q", p.In(""), p.Error())
	}
	wrapped := fmt.Errorf("parsing: %w", p)
	if got := From(wrapped); got != p {
		t.Errorf("From(wrapped) = %+v, want %+v", got, p)
	}
	other := errors.New("pades: something new")
	if got := From(other); got.EN != other.Error() || got.FR != other.Error() {
		t.Errorf("From(other) = %+v, want its text in both languages", got)
	}
}
