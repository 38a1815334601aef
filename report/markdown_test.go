package report_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/schemashift/schemashift/ledger"
	"github.com/schemashift/schemashift/report"
)

// A reason with line breaks and pipes stays in its cell: every row of the
// timeline has the table's five cells, and the text is all there.
func TestRetrospectiveMarkdownKeepsHostileReasonsInTheirCells(t *testing.T) {
	t.Parallel()
	at := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	r := report.Retrospective{Migration: "users\nsplit", Phase: ledger.DualWrite,
		Phases: []report.PhaseTime{{Phase: ledger.DualWrite, Entered: at, Duration: 3*time.Hour + 12*time.Minute, Current: true, Actor: "a|b\nc"}},
		Timeline: []ledger.Event{
			{Kind: "advance", Accepted: true, Actor: "ops|bot", FromPhase: "expanded", ToPhase: "dualwrite", Reason: "line one\nline two | three\r\n\\| four", At: at},
			{Kind: "rollback", Accepted: false, Actor: "x", Reason: "ends in a backslash \\", At: at},
		}}
	md := r.Markdown()
	assert.Contains(t, md, "# Retrospective: users ↵ split\n")
	rows := tableRows(t, md, "| time | what |")
	require.Len(t, rows, 2)
	for _, row := range rows {
		assert.Len(t, cells(row), 5, "%q", row)
	}
	assert.Equal(t, []string{"2032-01-01 00:00:00", "advance", "expanded → dualwrite", `ops\|bot`, `line one ↵ line two \| three ↵ \\\| four`}, cells(rows[0]))
	assert.Equal(t, `ends in a backslash \\`, cells(rows[1])[4])
	phases := tableRows(t, md, "| phase | entered |")
	require.Len(t, phases, 1)
	assert.Equal(t, []string{"dualwrite (now)", "2032-01-01T00:00:00Z", "3 h 12 min", `a\|b ↵ c`}, cells(phases[0]))
}

// tableRows returns the body rows of the table whose header starts with
// header.
func tableRows(t *testing.T, md, header string) []string {
	t.Helper()
	i := strings.Index(md, "\n"+header)
	require.GreaterOrEqual(t, i, 0, "no table %q", header)
	lines := strings.Split(md[i+1:], "\n")[2:] // header, separator
	var rows []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "|") {
			break
		}
		rows = append(rows, l)
	}
	return rows
}

// cells splits a Markdown table row as a renderer does: at each pipe not
// escaped by a backslash (itself not escaped).
func cells(row string) []string {
	var out []string
	var cur strings.Builder
	row = strings.TrimSuffix(strings.TrimPrefix(row, "| "), " |")
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row):
			cur.WriteByte(row[i])
			cur.WriteByte(row[i+1])
			i++
		case row[i] == '|':
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(row[i])
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                                     "0 s",
		350 * time.Millisecond:                "350 ms",
		45*time.Second + 900*time.Millisecond: "45 s",
		12*time.Minute + 5*time.Second:        "12 min 5 s",
		12 * time.Minute:                      "12 min",
		3*time.Hour + 12*time.Minute + 59*time.Second: "3 h 12 min",
		50*time.Hour + 10*time.Minute:                 "2 d 2 h",
		-90 * time.Second:                             "-1 min 30 s",
	} {
		assert.Equal(t, want, report.HumanDuration(d), "%v", d)
	}
}
