package workflow

import (
	"fmt"
	"time"
)

// Day is a calendar day without a time zone, as a sender writes a deadline
// (Échéance: 31/07/2026): the same day wherever the gateway runs; the
// gateway's time zone decides when it ends.
type Day struct {
	// Year is the full year, e.g. 2026.
	Year int
	// Month is the month of the year.
	Month time.Month
	// Day is the day of the month, from 1.
	Day int
}

// IsZero reports whether the day was not given.
func (d Day) IsZero() bool { return d == Day{} }

// End returns the first instant after the day in loc.
func (d Day) End(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, loc)
}

// String formats the day as ISO 8601 (YYYY-MM-DD).
func (d Day) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// Deadline is when an envelope submitted at now expires (SPEC §2,
// Échéance): at the end of the given day in loc, or, when none is given,
// at the end of the day defaultDays after now in loc, so that a deadline
// is always a whole day. passed reports a given day that has already
// ended, which the submission must be refused for.
func Deadline(now time.Time, defaultDays int, loc *time.Location, given Day) (deadline time.Time, passed bool) {
	if given.IsZero() {
		last := now.In(loc).AddDate(0, 0, defaultDays)
		return Day{last.Year(), last.Month(), last.Day()}.End(loc), false
	}
	deadline = given.End(loc)
	return deadline, !deadline.After(now)
}
