//! Made-up but plausible events for the demo: cardholders, card transactions at merchants
//! in eight cities (with card-testing fraud mixed in), and property listings.
//!
//! The same seed always gives the same events. Event time advances by a fixed step per
//! transaction with some jitter, and now and then a transaction arrives up to three seconds
//! out of order.

use serde_json::{Value, json};

const CITIES: &[(&str, [&str; 3], i64)] = &[
    ("Seoul", ["Gangnam", "Mapo", "Jongno"], 9_500),
    ("Busan", ["Haeundae", "Suyeong", "Seomyeon"], 5_200),
    ("Lisbon", ["Alfama", "Belém", "Parque das Nações"], 5_600),
    ("Porto", ["Ribeira", "Boavista", "Foz"], 3_900),
    ("Berlin", ["Mitte", "Kreuzberg", "Pankow"], 5_900),
    ("Munich", ["Schwabing", "Maxvorstadt", "Sendling"], 9_800),
    ("Austin", ["Downtown", "Zilker", "Mueller"], 4_700),
    ("Denver", ["LoDo", "Highlands", "Capitol Hill"], 4_900),
];

/// (name, category, lowest and highest usual amount)
const MERCHANTS: &[(&str, &str, f64, f64)] = &[
    ("Fresh Basket", "grocery", 4.0, 140.0),
    ("Corner Market", "grocery", 2.5, 60.0),
    ("FuelStop", "fuel", 20.0, 110.0),
    ("Green Garden Bistro", "restaurant", 12.0, 180.0),
    ("Noodle House", "restaurant", 8.0, 60.0),
    ("Daily Grind Coffee", "restaurant", 3.0, 18.0),
    ("Volt Electronics", "electronics", 30.0, 2_400.0),
    ("SkyWay Travel", "travel", 90.0, 3_800.0),
    ("City Pharmacy", "pharmacy", 3.0, 75.0),
    ("Page & Quill Books", "books", 6.0, 90.0),
    ("StreamBox", "online", 5.0, 25.0),
    ("Trail Outfitters", "outdoor", 15.0, 900.0),
];

const FIRST_NAMES: &[&str] = &[
    "Ana", "Ben", "Chloé", "Daniel", "Eun-ji", "Farid", "Greta", "Hiro", "Inês", "Jonas", "Kim",
    "Lena", "Mateo", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sung-min", "Tomás",
];
const LAST_NAMES: &[&str] = &[
    "Almeida", "Becker", "Choi", "Dubois", "Evans", "Fischer", "García", "Hoffmann", "Ito", "Jang",
    "Keller", "Lopes", "Martins", "Nakamura", "Okafor", "Park", "Reyes", "Silva",
];

/// The merchant card testers use for their tiny first charge.
const TEST_MERCHANT: (&str, &str) = ("QuickPay Online", "online");

pub struct Generator {
    state: u64,
    /// Event time of the next transaction, in milliseconds since the epoch.
    clock: i64,
    /// Event time added per transaction, on average.
    step: i64,
    cards: usize,
    next_tx: i64,
    next_listing: i64,
    /// Fraudulent charges due later: (event time, card).
    scheduled: Vec<(i64, usize)>,
}

impl Generator {
    pub fn new(seed: u64, start: i64, step: i64, cards: usize) -> Generator {
        Generator {
            state: seed.max(1),
            clock: start,
            step: step.max(1),
            cards: cards.max(1),
            next_tx: 1,
            next_listing: 1,
            scheduled: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn card_id(card: usize) -> String {
        format!("c{:05}", card + 1)
    }

    fn city_of_card(card: usize) -> &'static str {
        CITIES[card % CITIES.len()].0
    }

    /// Every cardholder, once.
    pub fn cardholders(&mut self) -> Vec<Value> {
        (0..self.cards)
            .map(|card| {
                let name = format!(
                    "{} {}",
                    FIRST_NAMES[self.below(FIRST_NAMES.len())],
                    LAST_NAMES[self.below(LAST_NAMES.len())]
                );
                let tier = match self.below(20) {
                    0 => "platinum",
                    1..=4 => "gold",
                    _ => "standard",
                };
                json!({"card_id": Self::card_id(card), "name": name,
                       "home_city": Self::city_of_card(card), "tier": tier})
            })
            .collect()
    }

    /// The next `count` transactions, and the listings that came meanwhile (about one per
    /// twenty transactions).
    pub fn batch(&mut self, count: usize) -> (Vec<Value>, Vec<Value>) {
        let mut transactions = Vec::with_capacity(count + 4);
        let mut listings = Vec::new();
        for _ in 0..count {
            let jitter = (self.unit() * self.step as f64) as i64;
            self.clock += self.step / 2 + jitter;
            // Fraudulent charges that have come due.
            let now = self.clock;
            let mut due: Vec<(i64, usize)> = Vec::new();
            self.scheduled.retain(|&(at, card)| {
                if at <= now {
                    due.push((at, card));
                    false
                } else {
                    true
                }
            });
            for (at, card) in due {
                let merchant = if self.below(2) == 0 { 6 } else { 7 };
                let (name, category, _, _) = MERCHANTS[merchant];
                let amount = 600.0 + (self.unit() * 2_400.0).round();
                let home = card % CITIES.len();
                let city = CITIES[(home + 1 + self.below(CITIES.len() - 1)) % CITIES.len()].0;
                transactions.push(self.transaction(at, card, name, category, city, amount));
            }
            let card = self.below(self.cards);
            if self.below(400) == 0 {
                // A card tester's tiny charge; most go on to a large one within minutes.
                let amount = 0.5 + (self.unit() * 149.0).round() / 100.0;
                let (name, category) = TEST_MERCHANT;
                transactions.push(self.transaction(now, card, name, category, "online", amount));
                if self.below(10) < 7 {
                    let later = now + 60_000 + (self.unit() * 420_000.0) as i64;
                    self.scheduled.push((later, card));
                }
                continue;
            }
            let (name, category, low, high) = MERCHANTS[self.below(MERCHANTS.len())];
            // Amounts lean towards the low end, as real spending does.
            let share = self.unit().powi(3);
            let amount = ((low + share * (high - low)) * 100.0).round() / 100.0;
            let city = if self.below(10) == 0 {
                CITIES[self.below(CITIES.len())].0
            } else {
                Self::city_of_card(card)
            };
            // Now and then one arrives late, within the watermark's five seconds.
            let at = if self.below(50) == 0 {
                now - (self.unit() * 3_000.0) as i64
            } else {
                now
            };
            transactions.push(self.transaction(at, card, name, category, city, amount));
            if self.below(20) == 0 {
                listings.push(self.listing(now));
            }
        }
        (transactions, listings)
    }

    fn transaction(
        &mut self,
        at: i64,
        card: usize,
        merchant: &str,
        category: &str,
        city: &str,
        amount: f64,
    ) -> Value {
        let id = self.next_tx;
        self.next_tx += 1;
        json!({"tx_id": id, "card_id": Self::card_id(card), "merchant": merchant,
               "category": category, "city": city, "amount": amount, "ts": timestamp(at)})
    }

    fn listing(&mut self, at: i64) -> Value {
        let (city, districts, per_m2) = CITIES[self.below(CITIES.len())];
        let district = districts[self.below(districts.len())];
        let rooms = 1 + self.below(5) as i64;
        let house = self.below(4) == 0;
        let area = ((25 + rooms * 18) as f64 * (0.8 + self.unit() * 0.5)).round();
        let price =
            (per_m2 as f64 * area * (0.8 + self.unit() * 0.4) / 1000.0).round() as i64 * 1000;
        let id = self.next_listing;
        self.next_listing += 1;
        json!({"listing_id": id, "city": city, "district": district,
               "kind": if house { "house" } else { "flat" }, "rooms": rooms,
               "area_m2": area, "price": price, "ts": timestamp(at)})
    }
}

/// `millis` as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
fn timestamp(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let mut a = Generator::new(7, 0, 100, 50);
        let mut b = Generator::new(7, 0, 100, 50);
        assert_eq!(a.cardholders(), b.cardholders());
        assert_eq!(a.batch(500), b.batch(500));
        let (transactions, _) = a.batch(5_000);
        assert!(
            transactions
                .iter()
                .any(|t| t["merchant"] == json!(TEST_MERCHANT.0))
        );
    }
}
