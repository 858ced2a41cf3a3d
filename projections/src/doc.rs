//! A rendering-neutral document: headings, paragraphs, lists and tables.
//! The binary renders it as text, Markdown, HTML or CSV.

use serde::Serialize;

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

    /// The first table: what CSV output carries.
    pub fn main_table(&self) -> Option<(&[String], &[Vec<String>])> {
        self.blocks.iter().find_map(|b| match b {
            Block::Table { headers, rows } => Some((headers.as_slice(), rows.as_slice())),
            _ => None,
        })
    }
}
