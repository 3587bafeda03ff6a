-- The housekeeping sweep (events.HandledSweep) finds the records of events
-- the stream can no longer deliver by their age, a batch at a time: without
-- an index each batch would read the whole table.
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
