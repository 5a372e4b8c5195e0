//! The DSQL recordings in `tests/dsql-conformance/` (copied with their licence; the folder's
//! README gives their origin and format), as the tests read them.

use serde::Deserialize;

/// One recording file: the cases of one area.
#[derive(Deserialize)]
pub struct Recording {
    /// The recorded cases.
    pub cases: Vec<Case>,
}

/// One recorded case: statements sent in order, and what DSQL answered to each.
#[derive(Deserialize)]
pub struct Case {
    /// The case's name, unique in its file.
    pub name: String,
    /// The statements, one per step (`null` for the two-session conflict cases); see
    /// [`Case::steps`].
    #[serde(default, rename = "steps")]
    steps_or_null: Option<Vec<String>>,
    /// DSQL's answer to each step.
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// Whether the step is one multi-statement simple-protocol query string.
    #[serde(default)]
    pub simple_protocol: bool,
    /// Whether the rows DSQL answered vary between runs and are not compared.
    #[serde(default)]
    pub ignore_rows: bool,
}

impl Case {
    /// The statements, one per step; none for the two-session conflict cases.
    pub fn steps(&self) -> &[String] {
        self.steps_or_null.as_deref().unwrap_or_default()
    }
}

/// What DSQL answered to one step.
#[derive(Deserialize, Debug)]
pub struct Observation {
    /// `ok` or `error`.
    pub outcome: String,
    /// The SQLSTATE of an error.
    pub sqlstate: Option<String>,
    /// The message of an error.
    pub message: Option<String>,
    /// The rows of a successful query, as text.
    pub rows: Option<Vec<Vec<serde_json::Value>>>,
    /// One result per statement of a simple-protocol step.
    pub results: Option<Vec<serde_json::Value>>,
}

/// The recording file `file` (e.g. `index.json`), parsed as `T`; panics naming the file.
pub fn read_json<T: for<'de> Deserialize<'de>>(file: &str) -> T {
    let path = format!(
        "{}/tests/dsql-conformance/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}
