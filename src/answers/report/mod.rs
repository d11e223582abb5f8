//! Reports computed from a journal by replaying it through the engine: the Declined
//! Detainer Outcome Report (ICD section 6) and ICE detention capacity.
//!
//! Each report is an accumulator fed by `replay::run` and rendered in several formats;
//! the shared rendering pieces (CSV quoting, self-contained HTML with inline SVG) are here
//! and in `html`.

pub mod capacity;
pub mod ddor;
pub(crate) mod html;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Md,
    Html,
}

/// One CSV field, quoted when it must be (RFC 4180).
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One Markdown table cell: pipes escaped, line breaks flattened.
pub(crate) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
