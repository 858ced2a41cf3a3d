//! A rendering-neutral document: headings, paragraphs, lists and tables.
//! The binary renders it as text, Markdown, HTML or CSV; what Markdown and
//! CSV need escaped is here ([`md_escape`], [`csv_cell`]).

use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Block {
    Heading(String),
    /// A heading one level below [`Block::Heading`].
    Subheading(String),
    Paragraph(String),
    List(Vec<String>),
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// Text shown exactly as it is, line by line (a signed checkpoint).
    Verbatim(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    pub title: String,
    /// Lines under the title: scope, date, the log head it was built from.
    pub meta: Vec<String>,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new(title: impl Into<String>) -> Self {
        Document { title: title.into(), meta: Vec::new(), blocks: Vec::new() }
    }

    pub fn meta(&mut self, line: impl Into<String>) -> &mut Self {
        self.meta.push(line.into());
        self
    }

    pub fn heading(&mut self, h: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Heading(h.into()));
        self
    }

    pub fn subheading(&mut self, h: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Subheading(h.into()));
        self
    }

    pub fn para(&mut self, p: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Paragraph(p.into()));
        self
    }

    pub fn list(&mut self, items: Vec<String>) -> &mut Self {
        self.blocks.push(Block::List(items));
        self
    }

    pub fn table(&mut self, headers: &[&str], rows: Vec<Vec<String>>) -> &mut Self {
        self.blocks.push(Block::Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows });
        self
    }

    pub fn verbatim(&mut self, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block::Verbatim(text.into()));
        self
    }

    /// The first table, as CSV output carries it: every cell through
    /// [`csv_cell`], so that no cell is taken for a formula by a
    /// spreadsheet. Every CSV renderer takes its table from here.
    pub fn main_table(&self) -> Option<(Vec<String>, Vec<Vec<String>>)> {
        let cells = |r: &[String]| r.iter().map(|c| csv_cell(c).into_owned()).collect::<Vec<_>>();
        self.blocks.iter().find_map(|b| match b {
            Block::Table { headers, rows } => Some((cells(headers), rows.iter().map(|r| cells(r)).collect())),
            _ => None,
        })
    }

    /// The document with [`md_escape`] applied to every text a Markdown
    /// renderer writes as it is (title, meta lines, headings, paragraphs,
    /// list items, table cells); verbatim blocks, written in a code fence,
    /// are left as they are.
    pub fn escaped_for_markdown(&self) -> Document {
        let all = |v: &[String]| v.iter().map(|s| md_escape(s)).collect::<Vec<_>>();
        Document {
            title: md_escape(&self.title),
            meta: all(&self.meta),
            blocks: self
                .blocks
                .iter()
                .map(|b| match b {
                    Block::Heading(h) => Block::Heading(md_escape(h)),
                    Block::Subheading(h) => Block::Subheading(md_escape(h)),
                    Block::Paragraph(p) => Block::Paragraph(md_escape(p)),
                    Block::List(items) => Block::List(all(items)),
                    Block::Table { headers, rows } => {
                        Block::Table { headers: all(headers), rows: rows.iter().map(|r| all(r)).collect() }
                    }
                    Block::Verbatim(v) => Block::Verbatim(v.clone()),
                })
                .collect(),
        }
    }
}

/// Text for Markdown: `&`, `<` and `>` as character references, so text
/// from the log (a fact, a deviation, an organisation's name) is shown as
/// written and never read as HTML by a Markdown renderer, which passes raw
/// HTML through.
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A CSV cell that a spreadsheet would take for a formula (one that begins
/// with `=`, `+`, `-`, `@`, a tab or a carriage return: "CSV injection")
/// with a `'` put first, as OWASP recommends, so it is shown as text. A
/// plain number (`-3`, `+46`, `-1,5`) cannot run anything and is left as it is.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !plain_number(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// An optional sign, digits, and at most one decimal point or comma followed by digits.
fn plain_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, fraction) = match digits.split_once(['.', ',']) {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_never_formulas() {
        for (given, cell) in [
            ("=1+2", "'=1+2"),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("-", "'-"),
            ("-3", "-3"),
            ("+46", "+46"),
            ("-1,5", "-1,5"),
            ("Härryda kommun", "Härryda kommun"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(given), cell, "{given:?}");
        }
        let mut d = Document::new("t");
        d.table(&["=h"], vec![vec!["@x".into()], vec!["ok".into()]]);
        d.table(&["second"], vec![]);
        let (headers, rows) = d.main_table().unwrap();
        assert_eq!(headers, ["'=h"]);
        assert_eq!(rows, [vec!["'@x".to_string()], vec!["ok".to_string()]]);
    }

    #[test]
    fn markdown_text_carries_no_html() {
        assert_eq!(md_escape("<script>alert(1)</script> & co"), "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co");
        let mut d = Document::new("<b>");
        d.meta("a<b").heading("<h>").subheading("<s>").para("<p>").list(vec!["<li>".into()]);
        d.table(&["<th>"], vec![vec!["</td><script>".into()]]).verbatim("<kept>");
        let e = d.escaped_for_markdown();
        assert_eq!(e.title, "&lt;b&gt;");
        assert_eq!(e.meta, ["a&lt;b"]);
        assert_eq!(
            e.blocks,
            [
                Block::Heading("&lt;h&gt;".into()),
                Block::Subheading("&lt;s&gt;".into()),
                Block::Paragraph("&lt;p&gt;".into()),
                Block::List(vec!["&lt;li&gt;".into()]),
                Block::Table {
                    headers: vec!["&lt;th&gt;".into()],
                    rows: vec![vec!["&lt;/td&gt;&lt;script&gt;".into()]]
                },
                Block::Verbatim("<kept>".into()),
            ]
        );
    }
}
