//! The console's pages as HTML: server-rendered, one self-contained document each, inline
//! CSS, no scripts, no external assets (the report pages' style, `report::html`).

use std::fmt::Write;

use chrono::{SecondsFormat, TimeDelta};
use handoff_core::model::Time;

use crate::answers::explain::{Timeline, What};
use crate::answers::report::html::{escape, page, table};
use crate::console::board::{Board, Role};

/// The links every page but the login form carries.
fn nav(active: &str) -> String {
    let mut out = String::from("<nav class=\"console\">");
    for (href, label) in [
        ("/", "Board"),
        ("/reports/ddor", "DDOR report"),
        ("/reports/capacity", "Capacity report"),
    ] {
        let class = if href == active { " class=\"on\"" } else { "" };
        let _ = write!(out, "<a href=\"{href}\"{class}>{label}</a>");
    }
    out.push_str(
        "<form method=\"get\" action=\"/person\" class=\"find\">\
<input name=\"id\" placeholder=\"person id\" aria-label=\"person id\" size=\"14\">\
<button type=\"submit\">Find</button></form>\
<form method=\"post\" action=\"/logout\" class=\"out\"><button type=\"submit\">Sign out</button></form>\
</nav>\n",
    );
    out
}

const STYLE: &str = "<style>nav.console{display:flex;gap:1rem;align-items:center;\
border-bottom:1px solid #d0d7de;padding:.4rem 0;margin-bottom:1rem;flex-wrap:wrap}\
nav.console a{color:#0969da;text-decoration:none} nav.console a.on{font-weight:600;color:#1b1f23}\
nav.console form{margin:0} nav.console .out{margin-left:auto}\
.soon{color:#cf222e;font-weight:600} .late{background:#ffebe9}\
.role{display:inline-block;border-radius:1rem;padding:.1rem .7rem;background:#ddf4ff}\
form.login{display:flex;flex-direction:column;gap:.6rem;max-width:20rem}\
.error{color:#cf222e} #holds td,#offers td,#decisions td{white-space:nowrap}</style>\n";

/// A console page: the shared style and navigation, then `body`.
fn console_page(title: &str, active: &str, body: &str) -> String {
    page(title, &format!("{STYLE}{}{body}", nav(active)))
}

/// Puts the console's navigation at the top of a report's own page.
pub(crate) fn around_report(doc: &str, active: &str, window: &str) -> String {
    let head = format!("{STYLE}{}{window}", nav(active));
    match doc.find("<body>\n") {
        Some(at) => {
            let at = at + "<body>\n".len();
            format!("{}{head}{}", &doc[..at], &doc[at..])
        }
        None => format!("{head}{doc}"),
    }
}

/// The form that chooses a report's window.
pub(crate) fn window_form(action: &str, from: Time, to: Time) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\" class=\"window\">\
<label>From <input name=\"from\" value=\"{}\"></label> \
<label>to <input name=\"to\" value=\"{}\"></label> \
<button type=\"submit\">Show</button></form>\n",
        stamp(from),
        stamp(to)
    )
}

/// The login form: all a visitor without the credential ever sees.
pub(crate) fn login(error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    page(
        "handoff console: sign in",
        &format!(
            "{STYLE}<h1>handoff console</h1>\n{error}\
<form method=\"post\" action=\"/login\" class=\"login\">\
<label for=\"credential\">Credential</label>\
<input type=\"password\" id=\"credential\" name=\"credential\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Sign in</button></form>\n"
        ),
    )
}

/// A short page for an error or a missing person.
pub(crate) fn message(title: &str, text: &str) -> String {
    console_page(
        title,
        "",
        &format!("<h1>{}</h1>\n<p>{}</p>\n", escape(title), escape(text)),
    )
}

fn stamp(t: Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2 d 3 h`, `3 h 20 min`, `12 min`; negative spans say "overdue by".
pub(crate) fn span(d: TimeDelta) -> String {
    if d < TimeDelta::zero() {
        return format!("overdue by {}", span(-d));
    }
    let mins = d.num_minutes();
    let (days, hours, mins) = (mins / 1440, (mins / 60) % 24, mins % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, h) => format!("{h} h {mins} min"),
        (d, h) => format!("{d} d {h} h"),
    }
}

fn person_link(id: &str) -> String {
    format!("<a href=\"/person/{}\">{}</a>", escape(id), escape(id))
}

fn role_text(role: Role) -> String {
    match role {
        Role::Single => "the only instance (file journal)".into(),
        Role::Writer { epoch } => format!("writer of the journal stream, epoch {epoch}"),
        Role::Standby => "hot standby: another instance writes the journal stream".into(),
        Role::Replay => "offline: a log replayed for audit".into(),
    }
}

/// The board: the operator's view.
pub(crate) fn board(b: &Board) -> String {
    let mut body = String::new();
    let clock = b.clock.map_or("none yet".to_owned(), stamp);
    let _ = write!(
        body,
        "<h1>handoff: board</h1>\n<p id=\"role\"><span class=\"role\">{}</span> \
<span class=\"note\">as of {}; the engine's clock {clock}; {} people known</span></p>\n",
        escape(&role_text(b.role)),
        stamp(b.as_of),
        b.people
    );

    let _ = writeln!(
        body,
        "<section id=\"holds\"><h2>Open 48-hour holds ({})</h2>",
        b.holds.len()
    );
    if b.holds.is_empty() {
        body.push_str("<p class=\"note\">No hold is open.</p>\n");
    } else {
        body.push_str(
            "<table><thead><tr><th>ends in</th><th>person</th><th>held by</th>\
<th>detainer</th><th>held from</th><th>hold until</th></tr></thead><tbody>\n",
        );
        for h in &b.holds {
            let left = h.until - b.as_of;
            let class = if left < TimeDelta::hours(6) {
                " class=\"soon\""
            } else {
                ""
            };
            let _ = writeln!(
                body,
                "<tr><td{class}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                span(left),
                person_link(&h.person_id),
                escape(&h.jurisdiction_id),
                escape(&h.detainer_id),
                stamp(h.from),
                stamp(h.until)
            );
        }
        body.push_str("</tbody></table>\n");
    }
    body.push_str("</section>\n");

    let _ = writeln!(
        body,
        "<section id=\"offers\"><h2>Open first-refusal offers to ICE ({})</h2>",
        b.offers.len()
    );
    if b.offers.is_empty() {
        body.push_str("<p class=\"note\">No offer is open.</p>\n");
    } else {
        body.push_str(
            "<table><thead><tr><th>answer due in</th><th>person</th><th>offer</th>\
<th>claimant</th><th>detainer</th><th>release at</th><th>respond by</th></tr></thead><tbody>\n",
        );
        for o in &b.offers {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                span(o.respond_by - b.as_of),
                person_link(&o.person_id),
                escape(&o.offer_id),
                escape(&o.jurisdiction_id),
                escape(&o.detainer_id),
                stamp(o.release_at),
                stamp(o.respond_by)
            );
        }
        body.push_str("</tbody></table>\n");
    }
    body.push_str("</section>\n");

    body.push_str("<section id=\"capacity\"><h2>ICE detention</h2>\n");
    match b.capacity {
        Some((funded, occupied)) => {
            let pct = if funded == 0 {
                "no funded beds".to_owned()
            } else {
                format!(
                    "{:.0}% of funded beds",
                    occupied as f64 * 100.0 / funded as f64
                )
            };
            let class = if occupied >= funded {
                " class=\"soon\""
            } else {
                ""
            };
            let _ = writeln!(
                body,
                "<p><b{class}>{occupied}</b> detained of <b>{funded}</b> funded beds ({pct}).</p>"
            );
        }
        None => body.push_str("<p class=\"note\">ICE has not reported its capacity.</p>\n"),
    }
    body.push_str("</section>\n");

    body.push_str("<section id=\"decisions\"><h2>Latest decisions</h2>\n");
    let rows: Vec<Vec<String>> = b
        .by_rule
        .iter()
        .map(|((ty, rule), n)| vec![(*ty).to_owned(), (*rule).to_owned(), n.to_string()])
        .collect();
    if rows.is_empty() {
        body.push_str("<p class=\"note\">No decision yet.</p>\n");
    } else {
        body.push_str("<h3>By type and rule</h3>\n");
        body.push_str(&table(&["type", "rule", "decisions"], &rows));
        body.push_str(
            "<h3>The latest, newest first</h3>\n<table><thead><tr><th>time</th><th>type</th>\
<th>rule</th><th>person</th><th>told</th></tr></thead><tbody>\n",
        );
        for d in &b.latest {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                stamp(d.time),
                escape(d.decision_type),
                escape(d.rule),
                person_link(&d.person_id),
                escape(&d.parties.join(", "))
            );
        }
        body.push_str("</tbody></table>\n");
    }
    body.push_str("</section>\n");

    body.push_str("<section id=\"dead-letters\"><h2>Dead letters by reason</h2>\n");
    let scope = match b.role {
        Role::Replay => {
            "what the live service dead-letters, in this log: invalid lines and the rules' refusals"
        }
        _ => "since this instance started",
    };
    if b.dead_letters.is_empty() {
        let _ = writeln!(body, "<p class=\"note\">None ({scope}).</p>");
    } else {
        let rows: Vec<Vec<String>> = b
            .dead_letters
            .iter()
            .map(|(r, n)| vec![(*r).to_owned(), n.to_string()])
            .collect();
        body.push_str(&table(&["reason", "dead letters"], &rows));
        let _ = writeln!(body, "<p class=\"note\">{scope}.</p>");
    }
    body.push_str("</section>\n");
    console_page("handoff: board", "/", &body)
}

/// A person's page: the `explain` timeline, with who was told of each decision.
pub(crate) fn person(t: &Timeline) -> String {
    let mut body = format!(
        "<h1>Person {}</h1>\n<section id=\"timeline\"><h2>Timeline</h2>\n\
<table><thead><tr><th>time</th><th>line</th><th>what</th><th>told</th></tr></thead><tbody>\n",
        escape(&t.person_id)
    );
    for e in &t.entries {
        let line = e.line.map_or("end".to_owned(), |n| n.to_string());
        match &e.what {
            What::Event {
                ty, summary, note, ..
            } => {
                let note = note
                    .as_ref()
                    .map_or(String::new(), |n| format!(" <i>[{}]</i>", escape(n)));
                let _ = writeln!(
                    body,
                    "<tr class=\"event\"><td>{}</td><td>{line}</td><td><b>{}</b>: {}{note}</td><td></td></tr>",
                    escape(&e.time),
                    escape(ty),
                    escape(summary)
                );
            }
            What::Decision {
                ty,
                explanation,
                told,
                ..
            } => {
                let _ = writeln!(
                    body,
                    "<tr class=\"decision\"><td>{}</td><td>{line}</td><td>→ <b>{}</b> {}</td><td>{}</td></tr>",
                    escape(&e.time),
                    escape(ty),
                    escape(explanation),
                    escape(&told.join(", "))
                );
            }
        }
    }
    body.push_str("</tbody></table></section>\n");
    console_page(&format!("handoff: {}", t.person_id), "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(TimeDelta::minutes(12)), "12 min");
        assert_eq!(span(TimeDelta::minutes(200)), "3 h 20 min");
        assert_eq!(span(TimeDelta::hours(51)), "2 d 3 h");
        assert_eq!(span(TimeDelta::minutes(-90)), "overdue by 1 h 30 min");
    }

    #[test]
    fn the_login_page_names_no_data() {
        let html = login(Some("That credential is not the one configured."));
        assert!(html.contains("name=\"credential\""));
        assert!(!html.contains("/person"));
    }

    #[test]
    fn the_navigation_goes_into_a_report_after_its_body_tag() {
        let doc = "<!DOCTYPE html>\n<html><head></head><body>\n<h1>R</h1></body></html>";
        let out = around_report(doc, "/reports/ddor", "");
        assert!(out.find("<nav").unwrap() > out.find("<body>").unwrap());
        assert!(out.find("<nav").unwrap() < out.find("<h1>R").unwrap());
    }
}
