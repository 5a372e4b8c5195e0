//! The DSQL recordings in `tests/dsql-conformance/` (copied with their licence; the folder's
//! README gives their origin and format), as the tests read them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The recordings folder.
const FOLDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dsql-conformance");

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
    /// The group it was recorded in (a key of [`Fixtures::group_prelude`] if it needs rows).
    pub group: String,
    /// The statements, one per step (`null` for the two-session conflict cases); see
    /// [`Case::steps`].
    #[serde(default, rename = "steps")]
    steps_or_null: Option<Vec<String>>,
    /// DSQL's answer to each step.
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// For a two-session case: DSQL's answers to each session's steps
    /// ([`Fixtures::session_steps`]), one list per session.
    #[serde(default)]
    pub sessions: Vec<Vec<Observation>>,
    /// For a two-session case: whether which session lost was a race.
    #[serde(default)]
    pub conflict_race: bool,
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
    /// What the step's statement returned (a single-statement step).
    #[serde(flatten)]
    pub answer: Answer,
    /// One answer per statement of a simple-protocol step.
    pub results: Option<Vec<Answer>>,
}

impl Observation {
    /// What each statement of a successful step returned.
    pub fn answers(&self) -> &[Answer] {
        self.results
            .as_deref()
            .unwrap_or(std::slice::from_ref(&self.answer))
    }
}

/// What one statement returned.
#[derive(Deserialize, Debug)]
pub struct Answer {
    /// The command tag (`SELECT 1`, `INSERT 0 1`, `CREATE TABLE`).
    pub command_tag: Option<String>,
    /// The column names of a statement that returns rows.
    pub columns: Option<Vec<String>>,
    /// The rows, each value as text (see the README).
    pub rows: Option<Vec<Vec<String>>>,
}

/// `fixtures.json`: what the recordings assume but do not carry.
#[derive(Deserialize)]
pub struct Fixtures {
    /// The tables created before every recording file, parents listed first.
    pub fixtures: Vec<Fixture>,
    /// Rows that earlier cases had left behind when a group ran, by group.
    pub group_prelude: BTreeMap<String, Vec<String>>,
    /// The steps of each session of a two-session case, by case name.
    pub session_steps: BTreeMap<String, Vec<Vec<String>>>,
}

/// One fixture table.
#[derive(Deserialize)]
pub struct Fixture {
    /// The table's name.
    pub table: String,
    /// The fixture tables it references.
    pub needs: Vec<String>,
    /// Its statements, in order.
    pub statements: Vec<String>,
}

impl Fixtures {
    /// The statements that make a database what `recording` assumes: every fixture's, parents
    /// first, then the prelude of each group the recording has. Panics if `fixtures.json`
    /// lists a table before one it needs.
    pub fn setup(&self, recording: &Recording) -> Vec<&str> {
        let mut created = BTreeSet::new();
        let mut statements = Vec::new();
        for fixture in &self.fixtures {
            if let Some(missing) = fixture.needs.iter().find(|n| !created.contains(n)) {
                panic!("fixture {} is listed before {missing}", fixture.table);
            }
            created.insert(&fixture.table);
            statements.extend(fixture.statements.iter().map(String::as_str));
        }
        let groups: BTreeSet<&str> = recording.cases.iter().map(|c| c.group.as_str()).collect();
        for group in groups {
            let prelude = self.group_prelude.get(group).into_iter().flatten();
            statements.extend(prelude.map(String::as_str));
        }
        statements
    }
}

/// The recording file `file` (e.g. `index.json`), parsed as `T`; panics naming the file.
pub fn read_json<T: for<'de> Deserialize<'de>>(file: &str) -> T {
    let path = format!("{FOLDER}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// The names of the recording files (every `.json` but `fixtures.json`), sorted.
pub fn recording_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(FOLDER)
        .unwrap_or_else(|e| panic!("read {FOLDER}: {e}"))
        .map(|entry| entry.expect("a folder entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".json") && name != "fixtures.json")
        .collect();
    files.sort();
    files
}
