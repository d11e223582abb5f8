//! A seeded generator of realistic synthetic event logs, for benchmarks, property-style checks
//! and sample reports (`handoff gen --events N --seed S [--people P] [--policy-every-people N]`).
//!
//! The output is JSON lines, one CloudEvents 1.0 event per line, each valid under ICD sections
//! 1 and 2. The log opens with the policy of every jurisdiction and ICE's bed capacity; ICE
//! then updates its capacity every day or so and a jurisdiction changes its policy every few
//! days (or, with [`GenConfig::policy_every_people`], once per so many people: a log for
//! benchmarks of replay under frequent policy changes). Everything else is people's stories:
//! a person's life is a sequence of chapters (a federal release, a stay in a county jail, time
//! in ICE custody, an arrest at large, a new arrest months after a release), each a short
//! script of events at increasing times. The generator keeps its own model of what `handoff`
//! will decide (ICD version 2, section 5) so that every chapter follows from where the
//! previous one left the person, and so that a first-refusal response names the offer
//! `handoff` makes.
//!
//! Stories include the custody changes of ICD version 2: a person released (R1.4, R3.1, R3.2,
//! R3.5) is jailed again months later, by a county (a new `local.release.due`, often after a
//! new detainer naming the county) or by BOP, and is decided on again; and ICE sometimes takes
//! custody of a person BOP or a county holds with no hold and no offer open (R4.1).
//!
//! Memory stays bounded: a fixed number of people are active at once, each with one pending
//! step in a min-heap keyed by (time, sequence), and a new person takes the place of one
//! whose story has ended. Events come out in global time order, so times never decrease.
//! The number of events per person is steered so that about `people` distinct people appear
//! and every one of them appears before the log ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::{self, Write as _};
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, TimeZone, Utc};

use handoff_core::ids::decision_id_for_event;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Total number of events to write (exactly this many lines).
    pub events: u64,
    /// Number of distinct people; default events / 10.
    pub people: u64,
    /// Seed of the pseudo-random stream: the same config always yields the same bytes.
    pub seed: u64,
    /// Time of the first event.
    pub start: DateTime<Utc>,
    /// `None`: a jurisdiction changes its policy every one to seven days. `Some(n)`: one
    /// policy change for every `n` people whose story starts, whatever the time, so the
    /// number of policy changes grows with the log (with 20 and 0.294 people an event, a
    /// million events hold about 14,700 of them, a quarter of which gain a return
    /// agreement and so set off R2.2 for everyone the jurisdiction claims).
    pub policy_every_people: Option<u64>,
}

impl GenConfig {
    /// A config for `events` events from `seed`, with `max(1, events / 10)` people, starting
    /// at 2017-01-28T00:00:00Z (the first day of the first Declined Detainer Outcome Report).
    pub fn new(events: u64, seed: u64) -> Self {
        GenConfig {
            events,
            people: (events / 10).max(1),
            seed,
            start: Utc
                .with_ymd_and_hms(2017, 1, 28, 0, 0, 0)
                .single()
                .expect("2017-01-28T00:00:00Z is a valid UTC time"),
            policy_every_people: None,
        }
    }
}

/// Writes the log; returns the number of lines written.
pub fn generate<W: Write>(cfg: &GenConfig, out: W) -> io::Result<u64> {
    let mut generator = Generator::new(cfg, out);
    generator.run()?;
    generator.world.out.w.flush()?;
    Ok(generator.world.out.lines)
}

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// How long after a release a person is jailed again, at the soonest and the latest. Every
/// other chapter but an arrest at large (which opens with ICE taking custody) begins within
/// 45 days of the person's previous event, which is how the tests tell a re-arrest in the
/// log.
const REARREST_MIN: i64 = 60 * DAY;
const REARREST_MAX: i64 = 270 * DAY;
/// The longest a jail may hold a person for ICE past their release (ICD R3.3).
const HOLD: i64 = handoff_core::engine::HOLD_LIMIT.num_seconds();

const BOP_SOURCE: &str = "urn:agency:bop:sentry";
const ICE_SOURCE: &str = "urn:agency:ice:eagle";

/// Countries of removal (ISO 3166-1 alpha-2), whether they often refuse or cannot take
/// returns (then ICE's removal is mostly not foreseeable), and their weight.
const COUNTRIES: [((&str, bool), u64); 8] = [
    (("MX", false), 450),
    (("GT", false), 170),
    (("HN", false), 130),
    (("SV", false), 90),
    (("IN", false), 40),
    (("CU", true), 40),
    (("VE", true), 40),
    (("LA", true), 40),
];

/// The heap slot of ICE's recurring capacity update.
const CAPACITY_SLOT: u32 = u32::MAX;
/// The heap slot of the recurring policy change of some jurisdiction.
const POLICY_SLOT: u32 = u32::MAX - 1;

/// SplitMix64 (Steele, Lea and Flood, 2014), written out here on purpose: benchmark logs and
/// tests rely on the exact bytes generated for a seed, so the stream must never change with a
/// dependency upgrade, as a library generator's stream may.
/// Tests that need a repeatable random schedule use it too.
pub struct Rng(u64);

impl Rng {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-and-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index into `items`, drawn with the weights given beside them.
    fn weighted<T>(&mut self, items: &[(T, u64)]) -> usize {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut r = self.below(total);
        for (i, (_, w)) in items.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        items.len() - 1
    }
}

/// A US state with ten of its counties. The counties are real names; which of them honor
/// detainers is drawn from `sanctuary_per_mille`, the chance that one does not.
struct StateInfo {
    code: &'static str,
    name: &'static str,
    /// Relative volume of detainers in the state.
    weight: u64,
    sanctuary_per_mille: u64,
    counties: [&'static str; 10],
}

/// Twenty states, two hundred jurisdictions. Several county names occur in more than one
/// state (Clark, Union, Orange, Washington, Suffolk, ...), which is why jurisdictions are
/// identified by code and never by name.
#[rustfmt::skip]
const STATES: [StateInfo; 20] = [
    StateInfo { code: "TX", name: "Texas", weight: 24, sanctuary_per_mille: 80, counties: [
        "Harris", "Dallas", "Travis", "Bexar", "Tarrant", "El Paso", "Hidalgo", "Cameron", "Webb",
        "Collin",
    ] },
    StateInfo { code: "CA", name: "California", weight: 14, sanctuary_per_mille: 750, counties: [
        "Los Angeles", "San Diego", "Orange", "Riverside", "San Bernardino", "Santa Clara",
        "Alameda", "Sacramento", "Fresno", "Kern",
    ] },
    StateInfo { code: "NY", name: "New York", weight: 7, sanctuary_per_mille: 600, counties: [
        "Nassau", "Suffolk", "Kings", "Queens", "Bronx", "New York", "Westchester", "Erie",
        "Monroe", "Albany",
    ] },
    StateInfo { code: "FL", name: "Florida", weight: 8, sanctuary_per_mille: 40, counties: [
        "Miami-Dade", "Broward", "Palm Beach", "Hillsborough", "Orange", "Duval", "Pinellas",
        "Lee", "Polk", "Collier",
    ] },
    StateInfo { code: "AZ", name: "Arizona", weight: 6, sanctuary_per_mille: 100, counties: [
        "Maricopa", "Pima", "Pinal", "Yuma", "Mohave", "Yavapai", "Cochise", "Coconino",
        "Santa Cruz", "Navajo",
    ] },
    StateInfo { code: "NV", name: "Nevada", weight: 6, sanctuary_per_mille: 150, counties: [
        "Clark", "Washoe", "Carson City", "Elko", "Nye", "Douglas", "Lyon", "Humboldt",
        "Churchill", "White Pine",
    ] },
    StateInfo { code: "IL", name: "Illinois", weight: 4, sanctuary_per_mille: 600, counties: [
        "Cook", "DuPage", "Lake", "Will", "Kane", "McHenry", "Winnebago", "Champaign", "Sangamon",
        "Peoria",
    ] },
    StateInfo { code: "GA", name: "Georgia", weight: 4, sanctuary_per_mille: 60, counties: [
        "Fulton", "Gwinnett", "Cobb", "DeKalb", "Clayton", "Chatham", "Hall", "Richmond",
        "Muscogee", "Whitfield",
    ] },
    StateInfo { code: "NC", name: "North Carolina", weight: 4, sanctuary_per_mille: 150, counties: [
        "Mecklenburg", "Wake", "Guilford", "Forsyth", "Durham", "Cumberland", "Buncombe", "Union",
        "Johnston", "Gaston",
    ] },
    StateInfo { code: "NJ", name: "New Jersey", weight: 4, sanctuary_per_mille: 400, counties: [
        "Bergen", "Essex", "Hudson", "Middlesex", "Passaic", "Union", "Monmouth", "Ocean",
        "Camden", "Mercer",
    ] },
    StateInfo { code: "WA", name: "Washington", weight: 3, sanctuary_per_mille: 550, counties: [
        "King", "Pierce", "Snohomish", "Spokane", "Clark", "Yakima", "Thurston", "Kitsap",
        "Whatcom", "Benton",
    ] },
    StateInfo { code: "OR", name: "Oregon", weight: 2, sanctuary_per_mille: 650, counties: [
        "Multnomah", "Washington", "Clackamas", "Lane", "Marion", "Jackson", "Deschutes", "Linn",
        "Douglas", "Yamhill",
    ] },
    StateInfo { code: "CO", name: "Colorado", weight: 3, sanctuary_per_mille: 450, counties: [
        "Denver", "El Paso", "Arapahoe", "Jefferson", "Adams", "Larimer", "Boulder", "Weld",
        "Pueblo", "Mesa",
    ] },
    StateInfo { code: "MA", name: "Massachusetts", weight: 2, sanctuary_per_mille: 450, counties: [
        "Suffolk", "Middlesex", "Worcester", "Essex", "Norfolk", "Bristol", "Plymouth", "Hampden",
        "Barnstable", "Hampshire",
    ] },
    StateInfo { code: "PA", name: "Pennsylvania", weight: 3, sanctuary_per_mille: 350, counties: [
        "Philadelphia", "Allegheny", "Montgomery", "Bucks", "Delaware", "Lancaster", "Chester",
        "York", "Berks", "Lehigh",
    ] },
    StateInfo { code: "VA", name: "Virginia", weight: 3, sanctuary_per_mille: 200, counties: [
        "Fairfax", "Prince William", "Loudoun", "Chesterfield", "Henrico", "Arlington", "Stafford",
        "Spotsylvania", "Albemarle", "Hanover",
    ] },
    StateInfo { code: "NM", name: "New Mexico", weight: 2, sanctuary_per_mille: 400, counties: [
        "Bernalillo", "Dona Ana", "Santa Fe", "Sandoval", "San Juan", "Valencia", "Lea", "Otero",
        "Eddy", "Chaves",
    ] },
    StateInfo { code: "MN", name: "Minnesota", weight: 1, sanctuary_per_mille: 350, counties: [
        "Hennepin", "Ramsey", "Dakota", "Anoka", "Washington", "Stearns", "Olmsted", "St. Louis",
        "Scott", "Wright",
    ] },
    StateInfo { code: "MI", name: "Michigan", weight: 2, sanctuary_per_mille: 200, counties: [
        "Wayne", "Oakland", "Macomb", "Kent", "Genesee", "Washtenaw", "Ingham", "Ottawa",
        "Kalamazoo", "Saginaw",
    ] },
    StateInfo { code: "OH", name: "Ohio", weight: 2, sanctuary_per_mille: 100, counties: [
        "Franklin", "Cuyahoga", "Hamilton", "Summit", "Montgomery", "Lucas", "Butler", "Stark",
        "Lorain", "Mahoning",
    ] },
];

/// Federal prisons, by the ids BOP's systems use for them.
const FACILITIES: [&str; 36] = [
    "fci-big-spring",
    "usp-atlanta",
    "fci-la-tuna",
    "fci-oakdale",
    "fcc-beaumont",
    "fci-terminal-island",
    "usp-lompoc",
    "fci-dublin",
    "fci-englewood",
    "fci-sheridan",
    "fci-seagoville",
    "fci-three-rivers",
    "fci-miami",
    "fcc-coleman",
    "fci-tallahassee",
    "fci-marianna",
    "usp-leavenworth",
    "fci-phoenix",
    "fci-tucson",
    "fci-safford",
    "fci-herlong",
    "fci-mendota",
    "fcc-victorville",
    "fci-danbury",
    "fci-otisville",
    "mdc-brooklyn",
    "mcc-chicago",
    "fci-pekin",
    "fci-milan",
    "fci-elkton",
    "fcc-butner",
    "fci-petersburg",
    "fci-jesup",
    "fcc-yazoo-city",
    "fci-texarkana",
    "fmc-carswell",
];

/// Offenses a detainer lists, with relative frequencies.
const OFFENSES: [(&str, u64); 18] = [
    ("drug possession", 18),
    ("driving under the influence", 16),
    ("assault", 12),
    ("domestic violence", 9),
    ("illegal reentry", 8),
    ("theft", 8),
    ("burglary", 7),
    ("drug trafficking", 6),
    ("identity theft", 5),
    ("fraud", 5),
    ("traffic violation", 5),
    ("weapons possession", 4),
    ("robbery", 3),
    ("resisting arrest", 3),
    ("sexual assault", 2),
    ("forgery", 2),
    ("human smuggling", 2),
    ("homicide", 1),
];

/// State or local charges a claim lists, with relative frequencies.
const CHARGES: [(&str, u64); 10] = [
    ("probation violation", 14),
    ("failure to appear", 10),
    ("drug trafficking", 9),
    ("burglary", 8),
    ("assault", 8),
    ("theft", 7),
    ("driving under the influence", 6),
    ("fraud", 5),
    ("domestic violence", 5),
    ("robbery", 3),
];

/// A jurisdiction and its current policy, as the log has announced it so far.
struct Jur {
    id: String,
    name: String,
    state: &'static StateInfo,
    honors: bool,
    return_agreement: bool,
    /// Every announcement that changed `return_agreement` (the first announcement
    /// included), as (event number, agreement after it), in log order: what R2.2 needs to
    /// know about the past (when the agreement was gained, whether it stood at a given
    /// moment). Short: one entry per change of this jurisdiction.
    agreements: Vec<(u64, bool)>,
}

impl Jur {
    /// Whether the jurisdiction had a return agreement just after event number `id` (none
    /// before its first announcement: ICD section 5).
    fn agreement_at(&self, id: u64) -> bool {
        let i = self.agreements.partition_point(|&(n, _)| n <= id);
        i > 0 && self.agreements[i - 1].1
    }

    /// The first announcement after event number `id` that gained a return agreement.
    fn gained_after(&self, id: u64) -> Option<u64> {
        let i = self.agreements.partition_point(|&(n, _)| n <= id);
        self.agreements[i..]
            .iter()
            .find(|&&(_, agreement)| agreement)
            .map(|&(n, _)| n)
    }
}

/// Who holds a person, as `handoff` sees it (ICD section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cust {
    /// No event has named a custodian yet.
    Unknown,
    Bop(u16),
    Local(u16),
    Ice,
    Released,
}

/// A detainer's criminal status.
#[derive(Debug, Clone, Copy)]
enum Status {
    Convicted,
    Charged,
    NoRecord,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Convicted => "convicted",
            Status::Charged => "charged",
            Status::NoRecord => "none",
        }
    }
}

/// An unsatisfied claim: the claimant, and the event number that lodged it.
#[derive(Debug, Clone, Copy)]
struct Claim {
    jur: u16,
    lodged: u64,
}

/// The person's active detainer (the generator never lets a person have two at once).
#[derive(Debug, Clone, Copy)]
struct Detainer {
    num: u64,
    /// The custodian the detainer was lodged with.
    custodian: Cust,
    declined_by: Option<u16>,
}

/// One step of a person's story: an event to write, or one of `handoff`'s own timers that the
/// generator must account for in its model, at a time kept beside it in the script.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// `ice.detainer.issued`, naming this custodian.
    Detainer(Cust),
    /// `ice.detainer.withdrawn` of the active detainer.
    Withdraw,
    /// `local.claim.lodged` by this jurisdiction.
    Claim(u16),
    /// `court.writ.issued`, delivering the person to this jurisdiction.
    Writ(u16),
    /// `bop.release.scheduled` by this facility.
    Schedule { facility: u16, release_at: i64 },
    /// `ice.first_refusal.response` to the person's latest offer.
    Respond { accept: bool },
    /// `local.release.due` from this jurisdiction.
    ReleaseDue { jur: u16, release_at: i64 },
    /// `local.detainer.declined` by the person's custodian.
    Decline,
    /// `hold.expired` from the jurisdiction that held the person.
    HoldExpired(u16),
    /// `ice.custody.assumed`, from this custodian.
    Assumed(Cust),
    /// `ice.removal.status`: the country (an index into [`COUNTRIES`]) and whether ICE
    /// expects to remove the person there in the foreseeable future (R6.2).
    Removal { country: u8, foreseeable: bool },
    /// `ice.release.factor`: `medical` when true, else `primary_caretaker` (R6.3).
    Factor { medical: bool },
    /// No event: the first-refusal offer's `respond_by` passes (R1.9).
    OfferLapses,
    /// No event: the hold's `hold_until` passes (R3.5).
    HoldLapses,
    /// No event: the chapter is over; plan the next one, or end the story.
    End,
}

/// An active person: what `handoff` knows of them, and the rest of the current chapter.
struct Person {
    num: u64,
    /// How many lines this person's story should take, and how many it has taken.
    budget: u64,
    used: u64,
    cust: Cust,
    /// The last jail that held the person, where an arrest at large is credited.
    last_jail: Option<u16>,
    det: Option<Detainer>,
    /// The unsatisfied claims, in the order lodged.
    claims: Vec<Claim>,
    /// The earliest writ received while the person was bound for a federal release.
    writ: Option<u16>,
    /// The event number of the `bop.release.scheduled` whose offer is open.
    offer: Option<u64>,
    /// The event number of the `bop.release.scheduled` that made the latest offer.
    last_offer: u64,
    /// `hold_until` of the active hold.
    hold: Option<i64>,
    /// The event number at which the person last came into ICE custody.
    ice_since: u64,
    /// The person was jailed again after a release. `handoff` under ICD version 1 took no
    /// notice of that (a released person stayed released), so the generator answers no
    /// first-refusal offer in such a story: the log then replays without a refused answer
    /// under either version of the rules.
    rearrested: bool,
    script: VecDeque<(i64, Act)>,
}

impl Person {
    fn new() -> Self {
        Person {
            num: 0,
            budget: 0,
            used: 0,
            cust: Cust::Unknown,
            last_jail: None,
            det: None,
            claims: Vec::new(),
            writ: None,
            offer: None,
            last_offer: 0,
            hold: None,
            ice_since: 0,
            rearrested: false,
            script: VecDeque::new(),
        }
    }

    /// Makes this slot a new person, keeping the allocations of the old one.
    fn reset(&mut self, num: u64, budget: u64) {
        let mut claims = std::mem::take(&mut self.claims);
        let mut script = std::mem::take(&mut self.script);
        claims.clear();
        script.clear();
        *self = Person {
            num,
            budget,
            claims,
            script,
            ..Person::new()
        };
    }

    fn push(&mut self, t: i64, act: Act) {
        debug_assert!(
            self.script.back().is_none_or(|&(last, _)| last <= t),
            "a script runs forward in time"
        );
        self.script.push_back((t, act));
    }

    /// The later of `t` and the time of the last planned step.
    fn last_time(&self, t: i64) -> i64 {
        self.script.back().map_or(t, |&(last, _)| last.max(t))
    }

    /// No one holds the person: never seen, or released. The next event that names a
    /// custodian makes it the custodian (ICD section 5).
    fn unheld(&self) -> bool {
        matches!(self.cust, Cust::Unknown | Cust::Released)
    }

    /// `handoff` decides a transfer to jurisdiction `j`, which satisfies its claims.
    fn move_to_local(&mut self, j: u16) {
        self.cust = Cust::Local(j);
        self.last_jail = Some(j);
        self.claims.retain(|c| c.jur != j);
    }

    /// The person comes into ICE custody at event number `id`.
    fn move_to_ice(&mut self, id: u64) {
        if self.cust != Cust::Ice {
            self.cust = Cust::Ice;
            self.ice_since = id;
        }
    }
}

/// The output: the line being built, the source of the next event, and the counters.
struct Out<W: Write> {
    w: BufWriter<W>,
    line: String,
    src: String,
    lines: u64,
    limit: u64,
    /// The number of the latest event; event ids are `e-<number>`, unique across sources.
    id: u64,
}

impl<W: Write> Out<W> {
    fn full(&self) -> bool {
        self.lines >= self.limit
    }

    fn source(&mut self, src: &str) {
        self.src.clear();
        self.src.push_str(src);
    }

    fn source_jur(&mut self, jur: &Jur) {
        self.src.clear();
        self.src.push_str("urn:jurisdiction:");
        self.src.push_str(&jur.id);
    }

    /// Starts a line: the envelope up to the opening brace of `data`. Every string the
    /// generator writes is plain ASCII without quotes, backslashes or control characters
    /// (ids, codes, times and the fixed texts above), so none needs JSON escaping.
    fn begin(&mut self, t: i64, ty: &str, subject: Option<u64>) -> &mut String {
        self.id += 1;
        let b = &mut self.line;
        b.clear();
        let _ = write!(b, "{{\"specversion\":\"1.0\",\"id\":\"e-{}\"", self.id);
        b.push_str(",\"source\":\"");
        b.push_str(&self.src);
        b.push_str("\",\"type\":\"");
        b.push_str(ty);
        b.push_str("\",\"time\":\"");
        push_time(b, t);
        b.push('"');
        if let Some(num) = subject {
            b.push_str(",\"subject\":\"");
            push_person(b, num);
            b.push('"');
        }
        b.push_str(",\"datacontenttype\":\"application/json\",\"data\":{");
        b
    }

    /// Ends and writes the line; about one line in a thousand is delivered twice, as a
    /// redelivery would. Returns the number of lines written.
    fn finish(&mut self, rng: &mut Rng) -> io::Result<u64> {
        self.line.push_str("}}\n");
        self.w.write_all(self.line.as_bytes())?;
        self.lines += 1;
        if !self.full() && rng.chance(1) {
            self.w.write_all(self.line.as_bytes())?;
            self.lines += 1;
            return Ok(2);
        }
        Ok(1)
    }
}

/// Writes `"key":`, after a comma unless it is the first member of its object.
fn key(b: &mut String, k: &str) {
    if !b.ends_with('{') {
        b.push(',');
    }
    b.push('"');
    b.push_str(k);
    b.push_str("\":");
}

fn kstr(b: &mut String, k: &str, v: &str) {
    key(b, k);
    b.push('"');
    b.push_str(v);
    b.push('"');
}

fn kfmt(b: &mut String, k: &str, v: fmt::Arguments<'_>) {
    key(b, k);
    b.push('"');
    let _ = b.write_fmt(v);
    b.push('"');
}

fn kperson(b: &mut String, num: u64) {
    key(b, "person_id");
    b.push('"');
    push_person(b, num);
    b.push('"');
}

fn ktime(b: &mut String, k: &str, t: i64) {
    key(b, k);
    b.push('"');
    push_time(b, t);
    b.push('"');
}

fn kcust(b: &mut String, k: &str, jurs: &[Jur], c: Cust) {
    key(b, k);
    b.push('{');
    match c {
        Cust::Bop(f) => {
            kstr(b, "kind", "bop");
            kstr(b, "id", FACILITIES[usize::from(f)]);
        }
        Cust::Local(j) => {
            kstr(b, "kind", "local");
            kstr(b, "id", &jurs[usize::from(j)].id);
        }
        // The generator only ever names a real custodian; ICE stands in for the others.
        Cust::Ice | Cust::Unknown | Cust::Released => {
            kstr(b, "kind", "ice");
            kstr(b, "id", "ice");
        }
    }
    b.push('}');
}

/// Writes `"key":[...]` with `count` distinct texts drawn from `items`.
fn ktexts(b: &mut String, k: &str, rng: &mut Rng, items: &[(&str, u64)], count: usize) {
    key(b, k);
    b.push('[');
    let mut chosen = [usize::MAX; 4];
    for n in 0..count.min(chosen.len()) {
        let mut i = rng.weighted(items);
        while chosen[..n].contains(&i) {
            i = (i + 1) % items.len();
        }
        chosen[n] = i;
        if n > 0 {
            b.push(',');
        }
        b.push('"');
        b.push_str(items[i].0);
        b.push('"');
    }
    b.push(']');
}

fn push_person(b: &mut String, num: u64) {
    let _ = write!(b, "P-{num:07}");
}

/// Writes `t` (seconds since the Unix epoch) as RFC 3339 in UTC, `2017-01-28T09:00:00Z`.
fn push_time(b: &mut String, t: i64) {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY));
    let s = t.rem_euclid(DAY);
    let _ = write!(
        b,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / HOUR,
        s / MINUTE % 60,
        s % 60
    );
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01 (H. Hinnant's
/// `civil_from_days`), so formatting a time costs no calendar library call.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Everything but the people: the stream, the output, the jurisdictions, ICE's beds and the
/// controller that spreads the events over the people.
struct World<W: Write> {
    rng: Rng,
    out: Out<W>,
    jurs: Vec<Jur>,
    /// Cumulative detainer-volume weights of `jurs`, for weighted picks.
    jur_cum: Vec<u64>,
    next_detainer: u64,
    next_claim: u64,
    next_writ: u64,
    funded: i64,
    occupied: i64,
    /// A funding cut in force: when it ends, and the funded beds to restore then.
    cut: Option<(i64, i64)>,
    /// The number of distinct people wanted, and the number started so far.
    people: u64,
    started: u64,
    /// Lines by which every person should have started; the rest go to continuing stories.
    target_lines: u64,
    /// Lines still budgeted to active people.
    outstanding: i64,
    /// Running average of the lines people take beyond their budget.
    overshoot: f64,
    /// One policy change per this many people started (`GenConfig::policy_every_people`).
    policy_every_people: Option<u64>,
    /// Policy changes due by that rule and not yet written.
    policy_owed: u64,
}

impl<W: Write> World<W> {
    fn new(cfg: &GenConfig, out: W) -> Self {
        let mut rng = Rng(cfg.seed);
        let mut jurs = Vec::new();
        let mut jur_cum = Vec::new();
        let mut total = 0;
        for state in &STATES {
            for (i, county) in state.counties.iter().enumerate() {
                let name = if county.ends_with("City") {
                    (*county).to_string()
                } else {
                    format!("{county} County")
                };
                let mut id = state.code.to_ascii_lowercase();
                id.push('-');
                for c in name.chars() {
                    match c {
                        'a'..='z' | '0'..='9' => id.push(c),
                        'A'..='Z' => id.push(c.to_ascii_lowercase()),
                        ' ' | '-' => id.push('-'),
                        _ => {}
                    }
                }
                let honors = !rng.chance(state.sanctuary_per_mille);
                let return_agreement = honors && rng.chance(200);
                jurs.push(Jur {
                    id,
                    name,
                    state,
                    honors,
                    return_agreement,
                    agreements: Vec::new(),
                });
                // The first counties listed are the big ones: they see the most detainers.
                total += state.weight * 60 / (i as u64 + 1);
                jur_cum.push(total);
            }
        }
        World {
            rng,
            out: Out {
                w: BufWriter::with_capacity(1 << 16, out),
                line: String::with_capacity(512),
                src: String::with_capacity(64),
                lines: 0,
                limit: cfg.events,
                id: 0,
            },
            jurs,
            jur_cum,
            next_detainer: 0,
            next_claim: 0,
            next_writ: 0,
            funded: 41_500,
            occupied: 40_900,
            cut: None,
            people: cfg.people.max(1),
            started: 0,
            target_lines: cfg.events / 100 * 95 + cfg.events % 100 * 95 / 100,
            outstanding: 0,
            overshoot: 2.0,
            policy_every_people: cfg.policy_every_people.map(|n| n.max(1)),
            policy_owed: 0,
        }
    }

    /// A jurisdiction, weighted by detainer volume.
    fn pick_jur(&mut self) -> u16 {
        let r = self
            .rng
            .below(*self.jur_cum.last().expect("jurisdictions exist"));
        self.jur_cum.partition_point(|&c| c <= r) as u16
    }

    /// A jurisdiction with (or without) a return agreement, if one turns up.
    fn pick_jur_with_agreement(&mut self, agreement: bool) -> Option<u16> {
        for _ in 0..40 {
            let j = self.pick_jur();
            if self.jurs[usize::from(j)].return_agreement == agreement {
                return Some(j);
            }
        }
        None
    }

    fn pick_facility(&mut self) -> u16 {
        self.rng.below(FACILITIES.len() as u64) as u16
    }

    /// Counts `n` lines against the person's budget.
    fn charge(&mut self, p: &mut Person, n: u64) {
        for _ in 0..n {
            p.used += 1;
            if p.used <= p.budget {
                self.outstanding -= 1;
            }
        }
    }

    /// `jurisdiction.policy.updated` with the jurisdiction's current policy; returns the
    /// event number.
    fn policy_event(&mut self, j: usize, t: i64) -> io::Result<u64> {
        let jur = &self.jurs[j];
        if self.rng.chance(850) {
            self.out.source_jur(jur);
        } else {
            self.out.source(ICE_SOURCE);
        }
        let b = self.out.begin(t, "jurisdiction.policy.updated", None);
        kstr(b, "jurisdiction_id", &jur.id);
        kstr(b, "name", &jur.name);
        kstr(b, "state", jur.state.code);
        key(b, "honors_detainers");
        b.push_str(if jur.honors { "true" } else { "false" });
        key(b, "return_agreement");
        b.push_str(if jur.return_agreement {
            "true"
        } else {
            "false"
        });
        let id = self.out.id;
        let agreement = jur.return_agreement;
        if self.jurs[j].agreements.last().map(|&(_, a)| a) != Some(agreement) {
            self.jurs[j].agreements.push((id, agreement));
        }
        self.out.finish(&mut self.rng)?;
        Ok(id)
    }

    /// A jurisdiction changes its policy. Without an agreement it signs one (and honors
    /// detainers from then on) or flips whether it honors detainers; with one, it gives it
    /// up half the time and otherwise re-announces its policy unchanged. So about a
    /// quarter of the changes gain an agreement, each setting off R2.2.
    fn policy_change(&mut self, t: i64) -> io::Result<()> {
        let j = self.rng.below(self.jurs.len() as u64) as usize;
        let jur = &mut self.jurs[j];
        if jur.return_agreement {
            if self.rng.chance(500) {
                jur.return_agreement = false;
            }
        } else if self.rng.chance(550) {
            jur.honors = !jur.honors;
        } else {
            jur.return_agreement = true;
            jur.honors = true;
        }
        self.policy_event(j, t)?;
        Ok(())
    }

    /// `ice.capacity.updated`: occupancy wanders around the funded number of beds, so that
    /// ICE is sometimes under and sometimes at or over capacity. Now and then funding is cut
    /// by 8 to 12 percent (as in March 2013), which sets off a funding review (R6.1), and
    /// restored 10 to 40 days later.
    fn capacity_event(&mut self, t: i64) -> io::Result<()> {
        match self.cut {
            Some((until, before)) if t >= until => {
                self.funded = before;
                self.cut = None;
            }
            Some(_) => {}
            None if self.rng.chance(15) => {
                let before = self.funded;
                self.funded -= before * self.rng.range(8, 12) / 100;
                self.cut = Some((t + self.rng.range(10 * DAY, 40 * DAY), before));
            }
            None if self.rng.chance(20) => {
                self.funded = (self.funded + self.rng.range(-1_500, 1_500)).clamp(38_000, 45_000);
            }
            None => {}
        }
        let target = self.funded - 300;
        self.occupied += (target - self.occupied) / 8 + self.rng.range(-700, 700);
        self.occupied = self.occupied.max(0);
        self.out.source(ICE_SOURCE);
        let b = self.out.begin(t, "ice.capacity.updated", None);
        key(b, "funded_beds");
        let _ = write!(b, "{}", self.funded);
        key(b, "occupied_beds");
        let _ = write!(b, "{}", self.occupied);
        self.out.finish(&mut self.rng)?;
        Ok(())
    }

    /// Starts a new person in slot `p`, with a budget of lines that spreads the lines left
    /// over the people left, and plans their first chapter from `t0`.
    fn start_person(&mut self, p: &mut Person, t0: i64) {
        self.started += 1;
        let left = (self.people - self.started + 1) as f64;
        let free = self.target_lines as i64 - self.out.lines as i64 - self.outstanding;
        let share = free as f64 / left - self.overshoot;
        let budget = if share <= 1.0 {
            1
        } else {
            (share * (0.5 + self.rng.unit())).round().max(1.0) as u64
        };
        self.outstanding += budget as i64;
        if self
            .policy_every_people
            .is_some_and(|n| self.started.is_multiple_of(n))
        {
            self.policy_owed += 1;
        }
        p.reset(self.started, budget);
        self.plan_opening(p, t0);
    }

    /// The first chapter of a story.
    fn plan_opening(&mut self, p: &mut Person, t0: i64) {
        let plain = p.budget <= 2 || self.rng.chance(90);
        if plain {
            // A release with no one else interested: from a county jail, or from BOP.
            if self.rng.chance(600) {
                let j = self.pick_jur();
                let release_at = t0 + self.rng.range(4 * HOUR, 5 * DAY);
                p.push(t0, Act::ReleaseDue { jur: j, release_at });
            } else {
                let facility = self.pick_facility();
                let release_at = t0 + self.rng.range(2 * DAY, 14 * DAY);
                p.push(
                    t0,
                    Act::Schedule {
                        facility,
                        release_at,
                    },
                );
            }
        } else if self.rng.chance(400) {
            self.plan_federal(p, t0);
        } else {
            let j = self.pick_jur();
            self.plan_local(p, j, t0, true);
        }
    }

    /// A federal release: maybe an ICE detainer, maybe claims by one to three
    /// jurisdictions, rarely a writ, then the release date. What follows is decided when the
    /// release is scheduled. Now and then ICE takes the person from BOP before any release
    /// is scheduled, with no offer open (R4.1), which ends the chapter.
    fn plan_federal(&mut self, p: &mut Person, t0: i64) {
        let facility = self.pick_facility();
        let mut t = t0;
        let mut detainer = false;
        if self.rng.chance(800) {
            detainer = true;
            if p.det.is_some() {
                // Back in BOP custody with a detainer still active: ICE names the prison.
                t = self.plan_reissue(p, t, Cust::Bop(facility));
            } else {
                p.push(t, Act::Detainer(Cust::Bop(facility)));
                t += self.rng.range(2 * HOUR, 3 * DAY);
                if self.rng.chance(150) {
                    t = self.plan_reissue(p, t, Cust::Bop(facility));
                }
            }
        }
        let mut claimant = None;
        if self.rng.chance(500) {
            let claims = 1 + self.rng.weighted(&[((), 60), ((), 30), ((), 10)]);
            for _ in 0..claims {
                let j = self.pick_jur();
                if claimant.is_some_and(|c| c == j) {
                    continue;
                }
                claimant = claimant.or(Some(j));
                p.push(t, Act::Claim(j));
                t += self.rng.range(HOUR, 3 * DAY);
            }
        }
        if self.rng.chance(30) {
            let j = match claimant {
                Some(j) if self.rng.chance(600) => j,
                _ => self.pick_jur(),
            };
            p.push(t, Act::Writ(j));
            t += self.rng.range(HOUR, 3 * DAY);
        } else if detainer && self.rng.chance(50) {
            // R4.1: ICE takes custody from BOP, no release scheduled and no offer open.
            let at = t + self.rng.range(DAY, 20 * DAY);
            p.push(at, Act::Assumed(Cust::Bop(facility)));
            self.plan_end(p, at);
            return;
        }
        let release_at = t + self.rng.range(2 * DAY, 14 * DAY);
        p.push(
            t,
            Act::Schedule {
                facility,
                release_at,
            },
        );
    }

    /// ICE replaces the active detainer (a new custodian, or a charge that became a
    /// conviction): it withdraws it and issues a new one. Returns the time after.
    fn plan_reissue(&mut self, p: &mut Person, t: i64, custodian: Cust) -> i64 {
        p.push(t, Act::Withdraw);
        let t = t + self.rng.range(10 * MINUTE, DAY);
        p.push(t, Act::Detainer(custodian));
        t + self.rng.range(HOUR, 3 * DAY)
    }

    /// A stay in the jail of jurisdiction `j`: a detainer (always when `fresh`: a new one
    /// naming this jail, or the active one reissued to name it; otherwise a fresh one,
    /// usually, when the person came from another custodian), perhaps withdrawn early,
    /// reissued or declined, then the release notice. What follows is decided when the
    /// release is due. Now and then ICE takes the person from the jail before the release
    /// is due, with no hold (R4.1), which ends the chapter.
    fn plan_local(&mut self, p: &mut Person, j: u16, t0: i64, fresh: bool) {
        let here = Cust::Local(j);
        let mut t = t0;
        let mut has_detainer = true;
        // Whether the jail holds the person before the release notice (a person jailed
        // again after a release is held from the first event that names the jail).
        let mut held = !p.unheld();
        match p.det {
            None if fresh || self.rng.chance(500) => {
                p.push(t, Act::Detainer(here));
                t += self.rng.range(HOUR, 3 * DAY);
                held = true;
            }
            None => has_detainer = false,
            Some(det) if fresh || (det.custodian != here && self.rng.chance(600)) => {
                t = self.plan_reissue(p, t, here);
                held = true;
            }
            Some(_) => {}
        }
        let mut pickup = has_detainer && held;
        if has_detainer {
            if self.rng.chance(30) {
                p.push(t, Act::Withdraw);
                t += self.rng.range(HOUR, 3 * DAY);
                pickup = false;
            } else {
                if self.rng.chance(100) {
                    t = self.plan_reissue(p, t, here);
                }
                let declines = if self.jurs[usize::from(j)].honors {
                    self.rng.chance(40)
                } else {
                    self.rng.chance(650)
                };
                if declines {
                    p.push(t, Act::Decline);
                    t += self.rng.range(HOUR, 3 * DAY);
                    pickup = false;
                }
            }
        }
        let due = t + self.rng.range(12 * HOUR, 10 * DAY);
        if pickup && self.rng.chance(50) {
            // R4.1: ICE takes custody from the jail, no release due and no hold.
            p.push(due, Act::Assumed(here));
            self.plan_end(p, due);
            return;
        }
        let release_at = due + self.rng.range(4 * HOUR, 4 * DAY);
        p.push(due, Act::ReleaseDue { jur: j, release_at });
    }

    /// A turn in ICE custody: a new or reissued detainer, a writ, or a claim (by a
    /// jurisdiction with a return agreement, which brings the person back to it, or
    /// without one).
    fn plan_ice(&mut self, p: &mut Person, t0: i64) {
        let mut t = t0;
        // What ICE's detention reviews weigh (R6): where removal stands, for one person
        // in four, and now and then a humanitarian factor.
        if self.rng.chance(250) {
            let country = self.rng.weighted(&COUNTRIES) as u8;
            let refuses = COUNTRIES[usize::from(country)].0.1;
            let foreseeable = !self.rng.chance(if refuses { 850 } else { 30 });
            p.push(
                t,
                Act::Removal {
                    country,
                    foreseeable,
                },
            );
            t += self.rng.range(MINUTE, HOUR);
        }
        if self.rng.chance(20) {
            p.push(
                t,
                Act::Factor {
                    medical: self.rng.chance(600),
                },
            );
            t += self.rng.range(MINUTE, HOUR);
        }
        let u = self.rng.below(1000);
        if p.det.is_none() && u < 400 {
            p.push(t, Act::Detainer(Cust::Ice));
        } else if p.det.is_some() && u < 200 {
            t = self.plan_reissue(p, t, Cust::Ice);
        } else {
            let claim = if u < 600 || !p.claims.is_empty() {
                None
            } else {
                self.pick_jur_with_agreement(u < 880)
            };
            match claim {
                Some(j) => p.push(t, Act::Claim(j)),
                None => {
                    // A claimant still waiting often gets its writ.
                    let j = match p.claims.first() {
                        Some(c) if self.rng.chance(700) => c.jur,
                        _ => self.pick_jur(),
                    };
                    p.push(t, Act::Writ(j));
                }
            }
        }
        let end = t + self.rng.range(HOUR, 2 * DAY);
        p.push(end, Act::End);
    }

    /// An arrest at large after a release, credited to the last jail that held the person.
    fn plan_at_large(&mut self, p: &mut Person, t0: i64) {
        let j = match p.last_jail {
            Some(j) => j,
            None => self.pick_jur(),
        };
        p.push(t0, Act::Assumed(Cust::Local(j)));
        let end = t0 + self.rng.range(HOUR, DAY);
        p.push(end, Act::End);
    }

    /// Plans the end of the chapter, a little after its last step.
    fn plan_end(&mut self, p: &mut Person, t: i64) {
        let end = p.last_time(t) + self.rng.range(MINUTE, 2 * HOUR);
        p.push(end, Act::End);
    }

    /// The chapter is over: end the story (and start a new person in the slot) once it has
    /// used its budget, or plan the next chapter from where the person now is.
    fn end_chapter(&mut self, p: &mut Person, t: i64) {
        if self.started < self.people && p.used >= p.budget {
            let over = (p.used - p.budget) as f64;
            self.overshoot = 0.98 * self.overshoot + 0.02 * over;
            let t0 = t + self.rng.range(10 * MINUTE, 6 * HOUR);
            self.start_person(p, t0);
            return;
        }
        match p.cust {
            Cust::Local(j) => {
                let t0 = t + self.rng.range(DAY, 20 * DAY);
                self.plan_local(p, j, t0, false);
            }
            Cust::Ice => {
                let t0 = t + self.rng.range(2 * DAY, 30 * DAY);
                self.plan_ice(p, t0);
            }
            Cust::Released => match self.rng.below(100) {
                0..=44 => {
                    // Jailed again by a county months later, most often where they were
                    // jailed before; usually ICE lodges a new detainer naming the jail.
                    let t0 = t + self.rng.range(REARREST_MIN, REARREST_MAX);
                    let j = match p.last_jail {
                        Some(j) if self.rng.chance(600) => j,
                        _ => self.pick_jur(),
                    };
                    p.rearrested = true;
                    let fresh = self.rng.chance(700);
                    self.plan_local(p, j, t0, fresh);
                }
                45..=59 => {
                    // Or sentenced to federal prison again.
                    let t0 = t + self.rng.range(REARREST_MIN, REARREST_MAX);
                    p.rearrested = true;
                    self.plan_federal(p, t0);
                }
                _ => {
                    let t0 = t + self.rng.range(7 * DAY, 90 * DAY);
                    self.plan_at_large(p, t0);
                }
            },
            Cust::Bop(facility) => {
                let t0 = t + self.rng.range(DAY, 30 * DAY);
                let release_at = t0 + self.rng.range(2 * DAY, 14 * DAY);
                p.push(
                    t0,
                    Act::Schedule {
                        facility,
                        release_at,
                    },
                );
            }
            Cust::Unknown => {
                let t0 = t + self.rng.range(DAY, 30 * DAY);
                self.plan_opening(p, t0);
            }
        }
    }

    /// R2.2 by a policy change, caught up with when the person's next step comes: the
    /// first announcement since the person came into ICE custody that gained a return
    /// agreement for one of their claimants (a claim lodged before it) decided a transfer
    /// to the earliest claimant that had an agreement at that moment.
    fn reconcile(&self, p: &mut Person) {
        if p.cust != Cust::Ice {
            return;
        }
        let Some(gained) = p
            .claims
            .iter()
            .filter_map(|c| self.jurs[usize::from(c.jur)].gained_after(c.lodged.max(p.ice_since)))
            .min()
        else {
            return;
        };
        let to = p
            .claims
            .iter()
            .take_while(|c| c.lodged < gained)
            .find(|c| self.jurs[usize::from(c.jur)].agreement_at(gained));
        if let Some(c) = to {
            p.move_to_local(c.jur);
        }
    }

    /// R2.2 when a claim is lodged for a person ICE holds: the earliest claimant with a
    /// return agreement gets the person (an earlier claimant without one does not stand
    /// in its way).
    fn claim_r2_2(&self, p: &mut Person) {
        if p.cust != Cust::Ice {
            return;
        }
        let to = p
            .claims
            .iter()
            .find(|c| self.jurs[usize::from(c.jur)].return_agreement);
        if let Some(c) = to {
            p.move_to_local(c.jur);
        }
    }

    /// Runs the person's next step, at time `t`.
    fn step(&mut self, p: &mut Person, t: i64) -> io::Result<()> {
        let (at, act) = p.script.pop_front().expect("an active person has a plan");
        debug_assert_eq!(at, t);
        self.reconcile(p);
        match act {
            Act::Detainer(custodian) => self.detainer(p, t, custodian)?,
            Act::Removal {
                country,
                foreseeable,
            } => {
                self.out.source(ICE_SOURCE);
                let b = self.out.begin(t, "ice.removal.status", Some(p.num));
                kperson(b, p.num);
                kstr(b, "country", COUNTRIES[usize::from(country)].0.0);
                key(b, "foreseeable");
                b.push_str(if foreseeable { "true" } else { "false" });
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
            }
            Act::Factor { medical } => {
                self.out.source(ICE_SOURCE);
                let b = self.out.begin(t, "ice.release.factor", Some(p.num));
                kperson(b, p.num);
                kstr(
                    b,
                    "factor",
                    if medical {
                        "medical"
                    } else {
                        "primary_caretaker"
                    },
                );
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
            }
            Act::Withdraw => {
                let Some(det) = p.det else { return Ok(()) };
                self.out.source(ICE_SOURCE);
                let b = self.out.begin(t, "ice.detainer.withdrawn", Some(p.num));
                kfmt(b, "detainer_id", format_args!("D-{}", det.num));
                kperson(b, p.num);
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                p.det = None;
                if p.offer.take().is_some() {
                    // R1.11: the offer is void; the claimant gets the person.
                    if let Some(c) = p.claims.first() {
                        p.move_to_local(c.jur);
                    }
                } else if p.hold.take().is_some() {
                    // R3.6.
                    p.cust = Cust::Released;
                }
            }
            Act::Claim(j) => {
                self.next_claim += 1;
                let jur = &self.jurs[usize::from(j)];
                self.out.source_jur(jur);
                let b = self.out.begin(t, "local.claim.lodged", Some(p.num));
                kfmt(b, "claim_id", format_args!("C-{}", self.next_claim));
                kperson(b, p.num);
                kstr(b, "jurisdiction_id", &jur.id);
                let count = 1 + usize::from(self.rng.chance(350));
                ktexts(b, "charges", &mut self.rng, &CHARGES, count);
                let lodged = self.out.id;
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                p.claims.push(Claim { jur: j, lodged });
                self.claim_r2_2(p);
            }
            Act::Writ(j) => {
                self.next_writ += 1;
                let jur = &self.jurs[usize::from(j)];
                let federal = self.rng.chance(150);
                self.out.src.clear();
                if federal {
                    self.out.src.push_str("urn:court:us-district-");
                    self.out.src.push_str(&jur.id[..2]);
                } else {
                    self.out.src.push_str("urn:court:");
                    self.out.src.push_str(&jur.id);
                }
                let b = self.out.begin(t, "court.writ.issued", Some(p.num));
                kfmt(b, "writ_id", format_args!("W-{}", self.next_writ));
                kperson(b, p.num);
                kstr(b, "jurisdiction_id", &jur.id);
                let kind = match self.rng.below(100) {
                    0..=79 => "ad_prosequendum",
                    80..=94 => "ad_testificandum",
                    _ => "other",
                };
                kstr(b, "kind", kind);
                if federal {
                    kfmt(
                        b,
                        "court",
                        format_args!("U.S. District Court for {}", jur.state.name),
                    );
                } else {
                    kfmt(b, "court", format_args!("{} District Court", jur.name));
                }
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                match p.cust {
                    // R2.1.
                    Cust::Ice => p.move_to_local(j),
                    Cust::Bop(_) | Cust::Unknown => {
                        if p.offer.take().is_some() {
                            // R1.10: the offer is void.
                            p.move_to_local(j);
                        } else if p.writ.is_none() {
                            p.writ = Some(j);
                        }
                    }
                    Cust::Local(_) | Cust::Released => {}
                }
            }
            Act::Schedule {
                facility,
                release_at,
            } => {
                if p.unheld() {
                    // ICD section 5: the release notice names the custodian of a person no
                    // one holds (a re-arrest's notice is always later than the release).
                    p.cust = Cust::Bop(facility);
                }
                self.out.source(BOP_SOURCE);
                let b = self.out.begin(t, "bop.release.scheduled", Some(p.num));
                kperson(b, p.num);
                kstr(b, "facility", FACILITIES[usize::from(facility)]);
                ktime(b, "release_at", release_at);
                let id = self.out.id;
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                if matches!(p.cust, Cust::Bop(_)) {
                    self.decide_federal(p, t, id, facility, release_at);
                }
                self.plan_end(p, release_at);
            }
            Act::Respond { accept } => {
                let offer_id = decision_id_for_event(BOP_SOURCE, &format!("e-{}", p.last_offer), 0);
                self.out.source(ICE_SOURCE);
                let b = self.out.begin(t, "ice.first_refusal.response", Some(p.num));
                kstr(b, "offer_id", &offer_id);
                kperson(b, p.num);
                kstr(b, "decision", if accept { "accept" } else { "decline" });
                let id = self.out.id;
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                if p.offer.take().is_some() {
                    if accept {
                        // R1.7.
                        p.move_to_ice(id);
                    } else if let Some(c) = p.claims.first() {
                        // R1.8.
                        p.move_to_local(c.jur);
                    }
                }
            }
            Act::ReleaseDue { jur: j, release_at } => {
                if p.unheld() {
                    p.cust = Cust::Local(j);
                    p.last_jail = Some(j);
                }
                let jur = &self.jurs[usize::from(j)];
                self.out.source_jur(jur);
                let b = self.out.begin(t, "local.release.due", Some(p.num));
                kperson(b, p.num);
                kstr(b, "jurisdiction_id", &jur.id);
                ktime(b, "release_at", release_at);
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                if p.hold.is_some() {
                    // A second notice during a hold changes nothing; the rest is planned.
                    return Ok(());
                }
                if p.cust == Cust::Local(j) {
                    self.decide_local(p, j, release_at);
                }
                self.plan_end(p, release_at);
            }
            Act::Decline => {
                let (Cust::Local(j), Some(det)) = (p.cust, p.det.as_mut()) else {
                    return Ok(());
                };
                det.declined_by = Some(j);
                let num = det.num;
                let jur = &self.jurs[usize::from(j)];
                self.out.source_jur(jur);
                let b = self.out.begin(t, "local.detainer.declined", Some(p.num));
                kfmt(b, "detainer_id", format_args!("D-{num}"));
                kperson(b, p.num);
                kstr(b, "jurisdiction_id", &jur.id);
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                if p.hold.take().is_some() {
                    // R3.7.
                    p.cust = Cust::Released;
                }
            }
            Act::HoldExpired(j) => {
                let Some(det) = p.det else { return Ok(()) };
                let jur = &self.jurs[usize::from(j)];
                self.out.source_jur(jur);
                let b = self.out.begin(t, "hold.expired", Some(p.num));
                kperson(b, p.num);
                kfmt(b, "detainer_id", format_args!("D-{}", det.num));
                kstr(b, "jurisdiction_id", &jur.id);
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                if p.hold.is_some_and(|until| t < until) {
                    // R3.5, by the event.
                    p.hold = None;
                    p.cust = Cust::Released;
                }
            }
            Act::Assumed(from) => {
                self.out.source(ICE_SOURCE);
                let b = self.out.begin(t, "ice.custody.assumed", Some(p.num));
                kperson(b, p.num);
                kcust(b, "from", &self.jurs, from);
                let id = self.out.id;
                let n = self.out.finish(&mut self.rng)?;
                self.charge(p, n);
                // R3.4 during a hold, R1.7 during an offer, R4.1 from BOP or a county
                // otherwise; then R4.2.
                p.hold = None;
                p.offer = None;
                p.move_to_ice(id);
            }
            Act::OfferLapses => {
                if p.offer.take().is_some()
                    && let Some(c) = p.claims.first()
                {
                    // R1.9.
                    p.move_to_local(c.jur);
                }
            }
            Act::HoldLapses => {
                if p.hold.take().is_some() {
                    // R3.5, by handoff's timer.
                    p.cust = Cust::Released;
                }
            }
            Act::End => self.end_chapter(p, t),
        }
        Ok(())
    }

    /// `ice.detainer.issued`; the first custodian named becomes the person's custodian.
    fn detainer(&mut self, p: &mut Person, t: i64, custodian: Cust) -> io::Result<()> {
        if p.det.is_some() {
            return Ok(());
        }
        self.next_detainer += 1;
        let num = self.next_detainer;
        let status = match self.rng.below(100) {
            0..=44 => Status::Convicted,
            45..=84 => Status::Charged,
            _ => Status::NoRecord,
        };
        let offenses = match status {
            Status::Convicted => 1 + self.rng.below(3) as usize,
            Status::Charged => 1 + usize::from(self.rng.chance(300)),
            Status::NoRecord => 0,
        };
        self.out.source(ICE_SOURCE);
        let b = self.out.begin(t, "ice.detainer.issued", Some(p.num));
        kfmt(b, "detainer_id", format_args!("D-{num}"));
        kperson(b, p.num);
        kcust(b, "custodian", &self.jurs, custodian);
        kstr(b, "criminal_status", status.as_str());
        ktexts(b, "offenses", &mut self.rng, &OFFENSES, offenses);
        let n = self.out.finish(&mut self.rng)?;
        self.charge(p, n);
        if p.unheld() {
            p.cust = custodian;
            if let Cust::Local(j) = custodian {
                p.last_jail = Some(j);
            }
        }
        p.det = Some(Detainer {
            num,
            custodian,
            declined_by: None,
        });
        Ok(())
    }

    /// R1 at `bop.release.scheduled` (event number `id`, processed at `t`), and the steps
    /// that follow from the decision.
    fn decide_federal(&mut self, p: &mut Person, t: i64, id: u64, facility: u16, release_at: i64) {
        let pickup = |world: &mut Self, p: &mut Person| {
            if world.rng.chance(850) {
                let at = release_at + world.rng.range(HOUR, 10 * HOUR);
                p.push(at, Act::Assumed(Cust::Bop(facility)));
            }
        };
        if let Some(j) = p.writ.take() {
            // R1.1.
            p.move_to_local(j);
            return;
        }
        match (p.det.is_some(), p.claims.first().map(|c| c.jur)) {
            (true, None) => {
                // R1.2; ICE usually confirms the pickup on the release date.
                p.move_to_ice(id);
                pickup(self, p);
            }
            // R1.3.
            (false, Some(j)) => p.move_to_local(j),
            // R1.4.
            (false, None) => p.cust = Cust::Released,
            // R1.5.
            (true, Some(j)) if self.jurs[usize::from(j)].return_agreement => p.move_to_local(j),
            (true, Some(j)) => {
                // R1.6: an offer; ICE answers before the release date, mostly.
                p.offer = Some(id);
                p.last_offer = id;
                let (lo, hi) = (t + HOUR, release_at - HOUR);
                let u = match self.rng.below(1000) {
                    // A story with a re-arrest gets no answer (see `Person::rearrested`).
                    80..820 if p.rearrested => 1000,
                    u => u,
                };
                if u < 30 {
                    let w = if self.rng.chance(500) {
                        j
                    } else {
                        self.pick_jur()
                    };
                    let at = self.rng.range(lo, hi);
                    p.push(at, Act::Writ(w));
                } else if u < 80 {
                    let at = self.rng.range(lo, hi);
                    p.push(at, Act::Withdraw);
                } else if u < 540 {
                    let at = self.rng.range(lo, hi);
                    p.push(at, Act::Respond { accept: true });
                    pickup(self, p);
                } else if u < 820 {
                    let at = self.rng.range(lo, hi);
                    p.push(at, Act::Respond { accept: false });
                } else {
                    // No answer. (Late answers are left out: handoff rejects them, and a
                    // replay of a generated log should pass.)
                    p.push(release_at, Act::OfferLapses);
                }
            }
        }
    }

    /// R3 at `local.release.due` from jurisdiction `j`, and the steps that follow.
    fn decide_local(&mut self, p: &mut Person, j: u16, release_at: i64) {
        let jur = &self.jurs[usize::from(j)];
        let Some(det) = p.det else {
            // R3.1.
            p.cust = Cust::Released;
            return;
        };
        if det.declined_by == Some(j) || !jur.honors {
            // R3.2: a declined detainer.
            p.cust = Cust::Released;
            return;
        }
        // R3.3: a hold, which ends in one of four ways.
        let until = release_at + HOLD;
        p.hold = Some(until);
        let assumed = if jur.return_agreement { 850 } else { 600 };
        if self.rng.chance(10) {
            let at = release_at + self.rng.range(MINUTE, 50 * MINUTE);
            p.push(at, Act::ReleaseDue { jur: j, release_at });
        }
        let u = self.rng.below(1000);
        if u < assumed {
            let at = release_at + self.rng.range(HOUR, 46 * HOUR);
            p.push(at, Act::Assumed(Cust::Local(j)));
        } else if u < assumed + 150 {
            if self.rng.chance(850) {
                let at = release_at + self.rng.range(36 * HOUR, HOLD - MINUTE);
                p.push(at, Act::HoldExpired(j));
            } else {
                // The jail reports after handoff's timer has already ended the hold.
                p.push(until, Act::HoldLapses);
                let at = until + self.rng.range(MINUTE, 6 * HOUR);
                p.push(at, Act::HoldExpired(j));
            }
        } else if u < assumed + 250 {
            let at = release_at + self.rng.range(HOUR, 40 * HOUR);
            p.push(at, Act::Withdraw);
        } else if u < assumed + 270 {
            let at = release_at + self.rng.range(HOUR, 40 * HOUR);
            p.push(at, Act::Decline);
        } else {
            // No one comes: the 48 hours lapse.
            p.push(until, Act::HoldLapses);
        }
    }
}

/// The generator: the world, the active people, and their pending steps in time order.
struct Generator<W: Write> {
    world: World<W>,
    start: i64,
    persons: Vec<Person>,
    /// Pending steps as (time, sequence, slot); the sequence breaks ties in the order the
    /// steps were scheduled, so the output never depends on heap internals.
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    seq: u64,
}

impl<W: Write> Generator<W> {
    fn new(cfg: &GenConfig, out: W) -> Self {
        Generator {
            world: World::new(cfg, out),
            start: cfg.start.timestamp(),
            persons: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    fn schedule(&mut self, t: i64, slot: u32) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, slot)));
    }

    fn schedule_person(&mut self, slot: usize) {
        let (t, _) = *self.persons[slot]
            .script
            .front()
            .expect("an active person always has a next step");
        self.schedule(t, slot as u32);
    }

    fn run(&mut self) -> io::Result<()> {
        let w = &mut self.world;
        let start = self.start;
        for j in 0..w.jurs.len() {
            if w.out.full() {
                return Ok(());
            }
            w.policy_event(j, start)?;
        }
        self.schedule(start + 5 * MINUTE, CAPACITY_SLOT);
        if self.world.policy_every_people.is_none() {
            let first_change = start + self.world.rng.range(DAY, 6 * DAY);
            self.schedule(first_change, POLICY_SLOT);
        }

        // About one person per 50 events is active at once, which spreads a log with the
        // default ten events per person over about a year; past 5,000,000 events the log
        // covers more time instead of holding more people in memory.
        let events = self.world.out.limit;
        let active = (events / 50).clamp(1, self.world.people.min(100_000)) as usize;
        for slot in 0..active {
            let t0 = start + self.world.rng.range(10 * MINUTE, 7 * DAY);
            let mut p = Person::new();
            self.world.start_person(&mut p, t0);
            self.persons.push(p);
            self.schedule_person(slot);
        }

        while !self.world.out.full() {
            let Reverse((t, _, slot)) = self.heap.pop().expect("the global timelines never end");
            // Policy changes owed to the people started so far, at the time reached (so the
            // log stays in time order).
            while self.world.policy_owed > 0 && !self.world.out.full() {
                self.world.policy_owed -= 1;
                self.world.policy_change(t)?;
            }
            if self.world.out.full() {
                break;
            }
            match slot {
                CAPACITY_SLOT => {
                    self.world.capacity_event(t)?;
                    let next = t + self.world.rng.range(6 * HOUR, 36 * HOUR);
                    self.schedule(next, CAPACITY_SLOT);
                }
                POLICY_SLOT => {
                    self.world.policy_change(t)?;
                    let next = t + self.world.rng.range(DAY, 7 * DAY);
                    self.schedule(next, POLICY_SLOT);
                }
                slot => {
                    let slot = slot as usize;
                    self.world.step(&mut self.persons[slot], t)?;
                    self.schedule_person(slot);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};

    fn gen_bytes(cfg: &GenConfig) -> Vec<u8> {
        let mut buf = Vec::new();
        let n = generate(cfg, &mut buf).expect("writing to a Vec cannot fail");
        assert_eq!(n, cfg.events);
        buf
    }

    fn is_person_id(s: &str) -> bool {
        let b = s.as_bytes();
        (4..=32).contains(&b.len())
            && (b[0].is_ascii_uppercase() || b[0].is_ascii_digit())
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-')
    }

    fn is_jurisdiction_id(s: &str) -> bool {
        let b = s.as_bytes();
        (2..=63).contains(&b.len())
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
    }

    fn is_ref_id(s: &str) -> bool {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c))
    }

    fn is_text_list(v: &Value) -> bool {
        v.as_array().is_some_and(|a| {
            a.iter()
                .all(|s| s.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 256))
        })
    }

    fn is_custodian(v: &Value) -> bool {
        let Some(o) = v.as_object() else { return false };
        if o.len() != 2 {
            return false;
        }
        let id = o.get("id").and_then(Value::as_str).unwrap_or("");
        match o.get("kind").and_then(Value::as_str) {
            // ICD version 2: facility ids take the jurisdiction_id pattern (no dots).
            Some("bop") => is_jurisdiction_id(id),
            Some("local") => is_jurisdiction_id(id),
            Some("ice") => id == "ice",
            _ => false,
        }
    }

    fn parse_time(v: &Value) -> i64 {
        let s = v.as_str().expect("a time is a string");
        assert!(s.ends_with('Z'), "{s}");
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .timestamp()
    }

    /// Checks one line against ICD sections 1 and 2; returns (type, person, time, event).
    fn check_line(line: &str) -> (String, Option<String>, i64, Value) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let o = v.as_object().expect("an event is an object");
        let ty = o["type"].as_str().expect("type").to_string();
        assert_eq!(o["specversion"], "1.0");
        let id = o["id"].as_str().expect("id");
        assert!(!id.is_empty() && id.len() <= 128);
        assert!(o["source"].as_str().is_some_and(|s| s.starts_with("urn:")));
        assert_eq!(o["datacontenttype"], "application/json");
        let time = parse_time(&o["time"]);
        let data = o["data"].as_object().expect("data is an object");
        let fields: &[&str] = match ty.as_str() {
            "jurisdiction.policy.updated" => &[
                "jurisdiction_id",
                "name",
                "state",
                "honors_detainers",
                "return_agreement",
            ],
            "ice.detainer.issued" => &[
                "detainer_id",
                "person_id",
                "custodian",
                "criminal_status",
                "offenses",
            ],
            "ice.detainer.withdrawn" => &["detainer_id", "person_id"],
            "local.claim.lodged" => &["claim_id", "person_id", "jurisdiction_id", "charges"],
            "bop.release.scheduled" => &["person_id", "facility", "release_at"],
            "ice.first_refusal.response" => &["offer_id", "person_id", "decision"],
            "court.writ.issued" => &["writ_id", "person_id", "jurisdiction_id", "kind", "court"],
            "local.release.due" => &["person_id", "jurisdiction_id", "release_at"],
            "local.detainer.declined" => &["detainer_id", "person_id", "jurisdiction_id"],
            "hold.expired" => &["person_id", "detainer_id", "jurisdiction_id"],
            "ice.custody.assumed" => &["person_id", "from"],
            "ice.capacity.updated" => &["funded_beds", "occupied_beds"],
            "ice.removal.status" => &["person_id", "country", "foreseeable"],
            "ice.release.factor" => &["person_id", "factor"],
            other => panic!("unknown type {other}"),
        };
        let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, fields.iter().copied().collect(), "{line}");
        for (k, val) in data {
            let s = val.as_str().unwrap_or("");
            let ok = match k.as_str() {
                "person_id" => is_person_id(s),
                "jurisdiction_id" => is_jurisdiction_id(s),
                "detainer_id" | "claim_id" | "writ_id" | "offer_id" => is_ref_id(s),
                "facility" => is_jurisdiction_id(s),
                "state" => s.len() == 2 && s.bytes().all(|c| c.is_ascii_uppercase()),
                "name" | "court" => !s.is_empty(),
                "honors_detainers" | "return_agreement" => val.is_boolean(),
                "custodian" | "from" => is_custodian(val),
                "criminal_status" => ["convicted", "charged", "none"].contains(&s),
                "offenses" | "charges" => is_text_list(val),
                "release_at" => parse_time(val) > 0,
                "decision" => s == "accept" || s == "decline",
                "kind" => ["ad_prosequendum", "ad_testificandum", "other"].contains(&s),
                "funded_beds" | "occupied_beds" => val.is_u64(),
                "country" => s.len() == 2 && s.bytes().all(|c| c.is_ascii_uppercase()),
                "foreseeable" => val.is_boolean(),
                "factor" => s == "medical" || s == "primary_caretaker",
                _ => false,
            };
            assert!(ok, "bad {k} in {line}");
        }
        let person = data
            .get("person_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut allowed = 7;
        match &person {
            Some(pid) => {
                assert_eq!(o["subject"].as_str(), Some(pid.as_str()), "{line}");
                allowed += 1;
            }
            None => assert!(!o.contains_key("subject"), "{line}"),
        }
        assert_eq!(o.len(), allowed, "{line}");
        (ty, person, time, v)
    }

    #[test]
    fn same_seed_same_bytes_and_different_seeds_differ() {
        let a = gen_bytes(&GenConfig::new(20_000, 7));
        let b = gen_bytes(&GenConfig::new(20_000, 7));
        let c = gen_bytes(&GenConfig::new(20_000, 8));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn writes_exactly_the_requested_lines() {
        for events in [0, 1, 7, 199, 200, 201, 1_000, 12_345] {
            let bytes = gen_bytes(&GenConfig::new(events, 3));
            let text = String::from_utf8(bytes).expect("ASCII");
            assert_eq!(text.lines().count() as u64, events);
            assert!(events == 0 || text.ends_with('\n'));
        }
        let mut cfg = GenConfig::new(5_000, 3);
        cfg.people = 4_000;
        assert_eq!(
            gen_bytes(&cfg).iter().filter(|&&c| c == b'\n').count(),
            5_000
        );
    }

    #[test]
    fn times_match_chrono() {
        let mut b = String::new();
        for t in [0, 1_485_561_600, 951_782_400, 4_107_542_399, 1_709_251_199] {
            b.clear();
            push_time(&mut b, t);
            let expected = DateTime::from_timestamp(t, 0)
                .expect("in range")
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            assert_eq!(b, expected);
        }
    }

    #[test]
    fn a_large_log_is_valid_realistic_and_complete() {
        let cfg = GenConfig::new(200_000, 42);
        let text = String::from_utf8(gen_bytes(&cfg)).expect("ASCII");
        let mut types: BTreeMap<String, u64> = BTreeMap::new();
        let mut people = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut duplicates = 0;
        let mut offers = BTreeSet::new();
        let mut responses = Vec::new();
        let mut last_time = i64::MIN;
        let mut lines = 0;
        for line in text.lines() {
            lines += 1;
            let (ty, person, time, v) = check_line(line);
            assert!(time >= last_time, "time goes backwards at {line}");
            last_time = time;
            let source = v["source"].as_str().expect("source").to_string();
            let id = v["id"].as_str().expect("id").to_string();
            if !keys.insert((source.clone(), id.clone())) {
                duplicates += 1;
                continue;
            }
            if ty == "bop.release.scheduled" {
                offers.insert(handoff_core::ids::decision_id_for_event(&source, &id, 0));
            }
            if ty == "ice.first_refusal.response" {
                responses.push(v["data"]["offer_id"].as_str().expect("offer").to_string());
            }
            *types.entry(ty).or_default() += 1;
            people.extend(person);
        }
        assert_eq!(lines, 200_000);
        assert_eq!(types.len(), 14, "{types:?}");
        assert!(people.len() >= 20_000, "{} people", people.len());
        assert!(people.len() as u64 <= cfg.people);
        assert!((50..=400).contains(&duplicates), "{duplicates} duplicates");
        assert!(!responses.is_empty());
        assert!(responses.iter().all(|r| offers.contains(r)));
    }

    #[test]
    fn people_are_capped_and_all_appear() {
        let mut cfg = GenConfig::new(30_000, 11);
        cfg.people = 500;
        let text = String::from_utf8(gen_bytes(&cfg)).expect("ASCII");
        let people: BTreeSet<String> = text.lines().filter_map(|l| check_line(l).1).collect();
        assert_eq!(people.len(), 500);
    }

    #[test]
    fn facility_and_jurisdiction_ids_fit_routing_keys() {
        // ICD version 2, section 1: lowercase, no dots, 2 to 63 characters.
        for f in FACILITIES {
            assert!(is_jurisdiction_id(f), "{f}");
        }
        let mut out = Vec::new();
        let world = World::new(&GenConfig::new(1, 1), &mut out);
        for jur in &world.jurs {
            assert!(is_jurisdiction_id(&jur.id), "{}", jur.id);
        }
    }

    /// Counts of the story shapes ICD version 2 brought, read off a log's events alone.
    #[derive(Debug, Default)]
    struct Shapes {
        people: u64,
        /// A person's first event at least 50 days after their previous one (other than
        /// ICE taking custody, an arrest at large) after a release notice: a re-arrest,
        /// ending in this county's `local.release.due` ...
        rearrest_local: u64,
        /// ... of which a detainer naming that county came first ...
        rearrest_local_detainer: u64,
        /// ... or in a `bop.release.scheduled`.
        rearrest_bop: u64,
        /// `ice.custody.assumed` from the BOP facility or county named by the person's
        /// latest detainer, with no release notice since it: no offer and no hold open.
        pickup_bop: u64,
        pickup_local: u64,
    }

    fn shapes(text: &str) -> Shapes {
        #[derive(Default)]
        struct Seen {
            last_time: i64,
            /// The latest release notice's `release_at`.
            notice: Option<i64>,
            /// A re-arrest under way: whether a detainer has named a local custodian, and
            /// which.
            rearrest: Option<Option<String>>,
            /// The custodian the latest detainer named, while no release notice followed.
            named: Option<(String, String)>,
        }
        const GAP: i64 = 50 * DAY;
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
        let mut shapes = Shapes::default();
        let mut keys = BTreeSet::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let key = (v["source"].to_string(), v["id"].to_string());
            if !keys.insert(key) {
                continue;
            }
            let Some(person) = v["subject"].as_str() else {
                continue;
            };
            let ty = v["type"].as_str().expect("type");
            let time = parse_time(&v["time"]);
            let data = &v["data"];
            let s = seen.entry(person.to_owned()).or_insert_with(|| {
                shapes.people += 1;
                Seen {
                    last_time: time,
                    ..Seen::default()
                }
            });
            if s.notice.is_some() && time - s.last_time >= GAP && ty != "ice.custody.assumed" {
                s.rearrest = Some(None);
            }
            s.last_time = time;
            match ty {
                "ice.detainer.issued" => {
                    let c = &data["custodian"];
                    let (kind, id) = (c["kind"].as_str().unwrap(), c["id"].as_str().unwrap());
                    s.named = Some((kind.to_owned(), id.to_owned()));
                    if kind == "local"
                        && let Some(named) = s.rearrest.as_mut()
                    {
                        *named = Some(id.to_owned());
                    }
                }
                "local.release.due" | "bop.release.scheduled" => {
                    let release_at = parse_time(&data["release_at"]);
                    if let Some(named) = s.rearrest.take() {
                        assert!(s.notice.is_some_and(|n| n < release_at), "{line}");
                        if ty == "bop.release.scheduled" {
                            shapes.rearrest_bop += 1;
                        } else {
                            shapes.rearrest_local += 1;
                            let county = data["jurisdiction_id"].as_str().unwrap();
                            if named.as_deref() == Some(county) {
                                shapes.rearrest_local_detainer += 1;
                            }
                        }
                    }
                    s.notice = Some(release_at);
                    s.named = None;
                }
                "ice.custody.assumed" => {
                    let from = &data["from"];
                    let from = (
                        from["kind"].as_str().unwrap().to_owned(),
                        from["id"].as_str().unwrap().to_owned(),
                    );
                    if s.named.as_ref() == Some(&from) {
                        match from.0.as_str() {
                            "bop" => shapes.pickup_bop += 1,
                            _ => shapes.pickup_local += 1,
                        }
                    }
                    s.named = None;
                    s.rearrest = None;
                }
                _ => {}
            }
        }
        shapes
    }

    #[test]
    fn stories_include_re_arrests_and_ice_pickups_without_a_hold() {
        let text = String::from_utf8(gen_bytes(&GenConfig::new(200_000, 42))).expect("ASCII");
        let s = shapes(&text);
        // As generated (seed 42, 20,000 people): 6,199 re-arrests by a county (5,042 of
        // them after a detainer naming it), 2,045 by BOP, and 346 + 1,142 pickups from BOP
        // and from a county without a hold. The floors are well below, not at the edge.
        assert!(s.rearrest_local >= s.people / 10, "{s:?}");
        assert!(s.rearrest_local_detainer * 2 >= s.rearrest_local, "{s:?}");
        assert!(s.rearrest_bop >= s.people / 40, "{s:?}");
        assert!(s.pickup_bop >= s.people / 200, "{s:?}");
        assert!(s.pickup_local >= s.people / 50, "{s:?}");
    }

    #[test]
    fn policy_every_people_sets_the_rate_of_policy_changes() {
        let mut cfg = GenConfig::new(100_000, 9);
        cfg.people = 29_400;
        cfg.policy_every_people = Some(20);
        let bytes = gen_bytes(&cfg);
        assert_eq!(bytes, gen_bytes(&cfg), "byte-stable with the knob too");
        let text = String::from_utf8(bytes).expect("ASCII");
        let mut agreement: BTreeMap<String, bool> = BTreeMap::new();
        let (mut policies, mut gains, mut last_time) = (0u64, 0u64, i64::MIN);
        let mut people = BTreeSet::new();
        for line in text.lines() {
            let (ty, person, time, v) = check_line(line);
            assert!(time >= last_time, "time goes backwards at {line}");
            last_time = time;
            people.extend(person);
            if ty != "jurisdiction.policy.updated" {
                continue;
            }
            policies += 1;
            let data = &v["data"];
            let now = data["return_agreement"].as_bool().expect("bool");
            let before = agreement.insert(data["jurisdiction_id"].to_string(), now);
            gains += u64::from(before == Some(false) && now);
        }
        // The opening announcements of the 200 jurisdictions, then one change per 20
        // people (a redelivered line now and then).
        let changes = policies - 200;
        let expected = people.len() as u64 / 20;
        assert!(
            changes >= expected - expected / 50 && changes <= expected + expected / 50,
            "{changes} changes for {} people",
            people.len()
        );
        assert!(gains * 5 >= changes, "{gains} gains in {changes} changes");
        // Without the knob a jurisdiction changes its policy every few days.
        let plain = String::from_utf8(gen_bytes(&GenConfig::new(100_000, 9))).expect("ASCII");
        let plain_policies = plain
            .lines()
            .filter(|l| l.contains("\"type\":\"jurisdiction.policy.updated\""))
            .count() as u64;
        assert!(plain_policies < 200 + expected / 5, "{plain_policies}");
    }
}
