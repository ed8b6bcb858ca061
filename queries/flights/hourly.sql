-- Departures per airport per scheduled hour at New York's airports on 2013-01-01.
--
--   sluice run queries/flights/hourly.sql --input flights=queries/flights/flights-2013-01-01.csv
--
-- Rows arrive in order of actual departure and the watermark allows an hour of disorder. But
-- one flight listed on this day, scheduled for 18:35, left at 08:48 the next morning and sits
-- among the 08:48 departures: it moves the watermark ten hours ahead at once, and every hour
-- reported so far is closed early. 'allowed-lateness' keeps closed hours for twelve more
-- hours, so the flights that follow correct them (-U, then +U); the one row later still, a
-- cancelled flight listed at the end of the file, goes to hourly_departures.late.

CREATE TABLE flights (
  year INT, month INT, day INT,
  dep_time INT, sched_dep_time INT, dep_delay DOUBLE,
  arr_time INT, sched_arr_time INT, arr_delay DOUBLE,
  carrier STRING, flight INT, tailnum STRING, origin STRING, dest STRING,
  air_time DOUBLE, distance DOUBLE, hour INT, minute INT,
  time_hour TIMESTAMP_LTZ(3),
  scheduled AS time_hour + CAST(minute || ' minutes' AS INTERVAL),
  WATERMARK FOR scheduled AS scheduled - INTERVAL '1' HOUR
) WITH ('csv.null-literal' = 'NA', 'allowed-lateness' = '12 h');

-- per airport and hour: departures, the average and worst delay in minutes
CREATE VIEW hourly_departures AS
SELECT origin, window_start, COUNT(*) AS departures,
  round(AVG(dep_delay), 1) AS avg_delay, MAX(dep_delay) AS worst_delay
FROM TABLE(TUMBLE(TABLE flights, DESCRIPTOR(scheduled), INTERVAL '1' HOUR))
GROUP BY window_start, window_end, origin;

-- flights per carrier so far, updated as departures come in
CREATE VIEW carrier_totals AS
SELECT carrier, COUNT(*) AS flights FROM flights WHERE dep_time IS NOT NULL GROUP BY carrier;
