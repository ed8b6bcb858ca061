-- Long departure delays and cancellations at New York's airports on 2013-01-01.
--
--   sluice run queries/flights/delays.sql --input flights=queries/flights/flights-2013-01-01.csv
--
-- Rows arrive in order of actual departure, so scheduled times are out of order; the
-- watermark allows an hour of disorder.

CREATE TABLE flights (
  year INT, month INT, day INT,
  dep_time INT, sched_dep_time INT, dep_delay DOUBLE,
  arr_time INT, sched_arr_time INT, arr_delay DOUBLE,
  carrier STRING, flight INT, tailnum STRING, origin STRING, dest STRING,
  air_time DOUBLE, distance DOUBLE, hour INT, minute INT,
  time_hour TIMESTAMP_LTZ(3),
  -- scheduled departure: the scheduled hour (UTC) plus its minutes
  scheduled AS time_hour + CAST(minute || ' minutes' AS INTERVAL),
  WATERMARK FOR scheduled AS scheduled - INTERVAL '1' HOUR
) WITH ('csv.null-literal' = 'NA');

CREATE TABLE long_delays (carrier STRING, flight INT, origin STRING, dest STRING,
  scheduled TIMESTAMP_LTZ(3), delay_hours DOUBLE);

-- every departure at least two hours late, in hours
INSERT INTO long_delays
SELECT carrier, flight, origin, dest, scheduled, round(dep_delay / 60, 1)
FROM flights
WHERE dep_delay >= 120;

-- the ones out of JFK, for the JFK operations desk
CREATE VIEW jfk_long_delays AS
SELECT carrier || ' ' || CAST(flight AS STRING) AS flight, dest, scheduled, delay_hours
FROM long_delays
WHERE origin = 'JFK';

-- cancelled flights: never departed
SELECT carrier, flight, tailnum, origin, dest, scheduled
FROM flights
WHERE dep_time IS NULL;
