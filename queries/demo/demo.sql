-- The demo: card transactions with their cardholders, and property listings, under four
-- standing queries. `sluice demo` generates the events live and shows each query's rows as
-- they come; the CSV files beside this script are a short sample of what it generates:
--
--   sluice run queries/demo/demo.sql --input cardholders=queries/demo/cardholders.csv \
--     --input transactions=queries/demo/transactions.csv \
--     --input listings=queries/demo/listings.csv

-- Who holds each card: a table kept current by key.
CREATE TABLE cardholders (
  card_id STRING, name STRING, home_city STRING, tier STRING,
  PRIMARY KEY (card_id) NOT ENFORCED
);

CREATE TABLE transactions (
  tx_id BIGINT, card_id STRING, merchant STRING, category STRING, city STRING,
  amount DOUBLE, ts TIMESTAMP(3),
  proc AS PROCTIME(),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
);

CREATE TABLE listings (
  listing_id BIGINT, city STRING, district STRING, kind STRING, rooms INT,
  area_m2 DOUBLE, price BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
);

-- Each minute: how many transactions, their volume, the 99th percentile amount, and how
-- many distinct cards were used (a HyperLogLog estimate).
CREATE VIEW dashboard AS
SELECT window_start, COUNT(*) AS transactions, ROUND(SUM(amount), 2) AS volume,
  ROUND(approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY amount), 2) AS p99_amount,
  approx_distinct(card_id) AS unique_cards
FROM TABLE(TUMBLE(TABLE transactions, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end;

-- Card testing: a tiny charge, then a large one on the same card within ten minutes. A
-- tiny charge with no large one in time is reported as a timeout.
CREATE VIEW card_testing AS
SELECT * FROM transactions MATCH_RECOGNIZE (
  PARTITION BY card_id ORDER BY ts
  MEASURES S.ts AS test_at, S.merchant AS test_merchant, B.ts AS big_at,
    B.amount AS big_amount, B.city AS big_city
  PATTERN (S B) WITHIN INTERVAL '10' MINUTE EMIT TIMEOUTS
  DEFINE S AS S.amount < 2, B AS B.amount > 500
);

-- Transactions over 1 000 with who made them (the cardholder as the table holds them when
-- the transaction arrives), and whether it happened away from home.
CREATE VIEW big_spenders AS
SELECT t.tx_id, t.ts, t.card_id, c.name, c.tier, t.merchant, t.city, t.amount,
  t.city <> c.home_city AS away_from_home
FROM transactions t
  JOIN cardholders FOR SYSTEM_TIME AS OF t.proc AS c ON t.card_id = c.card_id
WHERE t.amount > 1000;

-- Every ten minutes, per city: new listings and their median asking price.
CREATE VIEW listing_prices AS
SELECT window_start, city, COUNT(*) AS listings, median(price) AS median_price
FROM TABLE(TUMBLE(TABLE listings, DESCRIPTOR(ts), INTERVAL '10' MINUTE))
GROUP BY window_start, window_end, city;

-- Alerts: standing conditions matched against every new event through an index. Each
-- firing is the alert's name and the event; `sluice run` writes each alert's events to
-- its own file.
CREATE ALERT seoul_flat_under_600k ON listings
WHERE city = 'Seoul' AND kind = 'flat' AND price < 600000 AND rooms >= 2;

CREATE ALERT lisbon_or_porto_large ON listings
WHERE city IN ('Lisbon', 'Porto') AND area_m2 BETWEEN 100 AND 160 AND district LIKE 'A%';

-- A listing under 250 000, at most once per city every 10 minutes.
CREATE ALERT bargain ON listings WHERE price < 250000
WITH ('suppress' = '10 minutes', 'suppress.key' = 'city');
