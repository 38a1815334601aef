package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemashift/schemashift/backfill"
	"github.com/schemashift/schemashift/rollout"
)

// backfillEstimateCommand is `backfill estimate MIGRATION`: a sample of
// each job's chunks, run and rolled back, and what the run will cost.
func (c *cli) backfillEstimateCommand() *cobra.Command {
	var samples int
	var rate, duty float64
	var windows []string
	cmd := &cobra.Command{
		Use:   "estimate MIGRATION",
		Short: "Predict each backfill's duration, changed rows, dead tuples and WAL from a sample of chunks rolled back",
		Long: "Runs a sample of each job's chunks from where it stands, each in a transaction rolled back\n" +
			"(nothing is committed; the rows are locked for a chunk's time, as the run locks them), and\n" +
			"predicts the run at the pace given: its duration, the rows it changes, the dead tuples they\n" +
			"leave for vacuum, and the write-ahead log they write (PostgreSQL).",
		Args: args(1, 1, "migration"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if samples <= 0 {
				return usagef("backfill estimate: --samples %d is not positive", samples)
			}
			ws, err := parseWindows(windows)
			if err != nil {
				return err
			}
			co, err := c.coordinator(cmd.Context(), false)
			if err != nil {
				return err
			}
			var opts []backfill.Option
			if rate > 0 {
				opts = append(opts, backfill.WithRate(rate))
			}
			if duty > 0 {
				opts = append(opts, backfill.WithDutyCycle(duty))
			}
			if len(ws) > 0 {
				opts = append(opts, backfill.WithRunWindows(ws...))
			}
			es, err := co.EstimateBackfills(cmd.Context(), rollout.EstimateRequest{Migration: args[0], Actor: c.who(), Samples: samples}, opts...)
			if err != nil {
				return classify(err)
			}
			if c.json {
				return c.printJSON(es)
			}
			for _, e := range es {
				fmt.Fprintln(c.stdout, estimateLine(e))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&samples, "samples", 5, "chunks to sample per job")
	cmd.Flags().Float64Var(&rate, "rate", 0, "the run's rows per second (0: unlimited)")
	cmd.Flags().Float64Var(&duty, "duty", 0, "the run's duty cycle, in (0, 1] (0: the default pace)")
	cmd.Flags().StringArrayVar(&windows, "window", nil, `the run's windows, as backfill run takes them (repeatable)`)
	c.jsonFlag(cmd, "each job's estimate")
	return cmd
}

// estimateLine is an estimate in one line.
func estimateLine(e backfill.Estimate) string {
	wal := "WAL not read"
	if e.WALBytes >= 0 {
		wal = fmt.Sprintf("%.1f MB of WAL", float64(e.WALBytes)/1e6)
	}
	return fmt.Sprintf("%s: %d rows to walk, about %s at %s, done by %s (%.0f rows/s; sample of %d chunks, %d rows, %d changed, chunk %d); %d rows changed, %d dead tuples, %s",
		e.Job, e.Rows, e.Duration.Round(time.Second), e.Pace, e.Finish.UTC().Format(time.RFC3339), e.RowsPerSecond, e.SampleChunks, e.SampleRows, e.SampleChanged, e.ChunkSize,
		e.Changed, e.DeadTuples, wal)
}
