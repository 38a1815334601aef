package backfill_test

const workerEnv = "SCHEMASHIFT_BACKFILL_WORKER"

func workerMain() int { return 2 }
