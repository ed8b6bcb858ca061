-- Each departure from New York on 2013-01-01 with the weather at its airport when it was
-- scheduled: a temporal join of the flights with the hourly weather reports.
--
--   sluice run queries/flights/weather.sql \
--     --input flights=queries/flights/flights-2013-01-01.csv \
--     --input weather=queries/flights/weather-2013-01-01.csv
--
-- The weather table is keyed by airport, and its rows are versions ordered by their report
-- time: a flight joins the last report at or before its scheduled departure, once the
-- watermarks of both inputs have passed that time. The flights are listed in order of actual
-- departure, up to ten hours after they were scheduled (see hourly.sql), so their watermark
-- allows twelve hours of disorder; the one flight later still, a cancelled flight listed at
-- the end of the file, goes to departure_weather.late.

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

CREATE TABLE weather (
  origin STRING, year INT, month INT, day INT, hour INT,
  temp DOUBLE, dewp DOUBLE, humid DOUBLE, wind_dir DOUBLE, wind_speed DOUBLE,
  wind_gust DOUBLE, precip DOUBLE, pressure DOUBLE, visib DOUBLE,
  time_hour TIMESTAMP_LTZ(3),
  WATERMARK FOR time_hour AS time_hour,
  PRIMARY KEY (origin) NOT ENFORCED
) WITH ('csv.null-literal' = 'NA');

CREATE VIEW departure_weather AS
SELECT f.carrier, f.flight, f.origin, f.scheduled, f.dep_delay,
  w.temp, w.wind_speed, w.visib, w.time_hour AS reported
FROM flights f JOIN weather FOR SYSTEM_TIME AS OF f.scheduled AS w ON f.origin = w.origin;
