CREATE TABLE "delivery_tallies" (
	"outcome" text NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "job_tallies" (
	"tbl" text NOT NULL,
	"queue" text NOT NULL,
	"status" text NOT NULL,
	"n" bigint NOT NULL
);
