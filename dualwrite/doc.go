// Package dualwrite wraps a repository's reads and writes so that each call
// follows the stage table of its migration (see package flags): which shape
// is written, in which order, which is authoritative, and which is read in
// shadow and compared.
//
// A [Reader] takes one read function per shape:
//
//	r, err := dualwrite.NewReader(flag,
//		func(ctx context.Context, id int64) (User, error) { return repo.byIDFullName(ctx, id) },
//		func(ctx context.Context, id int64) (User, error) { return repo.byIDSplitName(ctx, id) },
//		dualwrite.WithObserver(obs), dualwrite.WithSensitiveFields("Email"))
//	defer r.Close()
//	u, err := r.Read(ctx, 42)
//
// At shadow and live the other shape is read too, in the background: the
// caller gets the authoritative result unchanged and never waits. Shadow
// reads are bounded ([WithShadowConcurrency]; when full they are dropped and
// counted, never queued), sampled ([WithShadowSampleRate]), cut by a timeout
// ([WithShadowTimeout]), and a panic in one is recovered. The two results are
// compared — deeply by default, with a field-level [Diff]; or with a
// [Comparator] — and the [Comparison] goes to the [Observer], with the
// values of sensitive fields replaced by [Redacted].
//
// Each shadow read is counted as exactly one of these:
//
//   - a match: both reads succeeded and agreed (or both failed the same way,
//     as a row missing from both shapes does);
//   - a mismatch: both succeeded and differ, also when read again (a recheck,
//     [WithRecheck], clears a write that landed between the two reads, and
//     only that);
//   - a failure ([Comparison].Fault): either read failed otherwise, the
//     shadow read timed out or panicked, or the comparator panicked — never a
//     match, and never rechecked;
//   - a drop ([ShadowDrop]): the bound was full, or the reader was closed.
//
// A call left out by sampling is none of these. A consistency figure is
// matches / (matches + mismatches + failures); drops say how many
// comparisons were lost.
//
// A [TxWriter] writes both shapes of a value that live in one database, in
// one transaction: they commit together or not at all. A [Writer] writes two
// stores; when the write to the non-authoritative one fails, the call fails
// with a [SecondaryWriteError], or the failure is recorded in a
// [RepairQueue] ([WithRepairQueue]). Writes to the new shape must be upserts
// of its full representation, so that a retry or a repair is safe.
//
// Everything the adapters do is reported to an [Observer]: calls by stage,
// origin and role with their latency and error, comparisons, dropped shadow
// reads and stage fallbacks. [SlogObserver] logs; package dualwriteotel
// records OpenTelemetry metrics; package dualwritetest records for tests.
package dualwrite
