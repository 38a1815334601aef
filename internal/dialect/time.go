package dialect

import (
	"fmt"
	"time"
)

// stampFormat is how a time of a caller's clock is passed to the database
// ([Stamp]): UTC, fixed width, to the microsecond (PostgreSQL's
// resolution), which every dialect reads as a timestamp. A database that
// keeps it as the text it is compares it as text: in this form text sorts
// as time does, so that until < $n compares times there too. It sorts as
// time does against the millisecond text of a strftime default
// ([TimeFormat]) as well, but for the one instant both spell (12.345 and
// 12.345000), which sorts before itself in the longer form.
const stampFormat = "2006-01-02 15:04:05.000000+00:00"

// TimeFormat is how a database that keeps timestamps as text spells one
// in column defaults and rows of earlier releases: UTC, fixed width, to
// the millisecond.
const TimeFormat = "2006-01-02 15:04:05.000+00:00"

// Stamp is t as a bind parameter: a time of the caller's clock, stored in
// a timestamp column or compared with one, on every database, in place
// of the database's now(). Decisions on time are made by one clock this
// way, and a test moves it instead of waiting. In a position where the
// parameter's type cannot be inferred from a column (a CASE, a select
// list), wrap it in [Rendering.Timestamp].
func Stamp(t time.Time) string { return Tick(t).Format(stampFormat) }

// Tick is t in UTC at the microsecond the database keeps of it, so that
// what is decided on a time in Go agrees with what the database decides
// on its [Stamp].
func Tick(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ParseTime reads a timestamp a database returned as text (from an
// expression, which carries no declared type for the driver to go by).
func ParseTime(s string) (time.Time, error) {
	for _, f := range []string{TimeFormat, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.Parse(f, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q: not a timestamp", s)
}

// Time scans a timestamp from any dialect, expressions that come back as
// text included. The zero value is NULL. A plain value: not for
// concurrent scans into one.
type Time struct{ time.Time }

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		t.Time = time.Time{}
	case time.Time:
		t.Time = v
	case string:
		p, err := ParseTime(v)
		t.Time = p
		return err
	case []byte:
		p, err := ParseTime(string(v))
		t.Time = p
		return err
	default:
		return fmt.Errorf("scan time: unsupported %T", v)
	}
	return nil
}
