-- Delays building up at New York's airports on 2013-01-01: a departure on time, then three
-- or more in a row (in scheduled order, per airport) each leaving later than the one before,
-- the last at least half an hour late. A MATCH_RECOGNIZE row pattern.
--
--   sluice run queries/flights/delay_streaks.sql \
--     --input flights=queries/flights/flights-2013-01-01.csv
--
-- The watermark allows twelve hours of disorder (see weather.sql): the flights are listed in
-- order of actual departure, up to ten hours after they were scheduled.

CREATE TABLE flights (
  year INT, month INT, day INT,
  dep_time INT, sched_dep_time INT, dep_delay DOUBLE,
  arr_time INT, sched_arr_time INT, arr_delay DOUBLE,
  carrier STRING, flight INT, tailnum STRING, origin STRING, dest STRING,
  air_time DOUBLE, distance DOUBLE, hour INT, minute INT,
  time_hour TIMESTAMP_LTZ(3),
  scheduled AS time_hour + CAST(minute || ' minutes' AS INTERVAL),
  WATERMARK FOR scheduled AS scheduled - INTERVAL '12' HOUR
) WITH ('csv.null-literal' = 'NA');

CREATE VIEW delay_streaks AS
SELECT * FROM flights MATCH_RECOGNIZE (
  PARTITION BY origin
  ORDER BY scheduled, carrier, flight
  MEASURES FIRST(LATER.scheduled) AS streak_start, LAST(LATER.scheduled) AS streak_end,
    COUNT(LATER.*) AS departures, LAST(LATER.dep_delay) AS worst_delay,
    string_agg(LATER.carrier || LATER.flight, ' ') AS flights
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (ON_TIME LATER{3,})
  DEFINE ON_TIME AS ON_TIME.dep_delay <= 0,
    LATER AS LATER.dep_delay > PREV(LATER.dep_delay)
  -- the streak must end at least half an hour late
) AS s
WHERE worst_delay >= 30;
