//! What Aurora DSQL would do with one query string, decided from PostgreSQL's own grammar.
//!
//! [`classify`] takes the SQL text of a simple-query (`Q`) or extended-protocol `Parse` message
//! and answers, statement by statement, what kind of statement it is, whether DSQL refuses it
//! (with DSQL's SQLSTATE and message, [`Refusal`]), and whether it carries DSQL's `ASYNC`
//! keyword, which PostgreSQL does not know (`CREATE [UNIQUE] INDEX ASYNC …`,
//! `ALTER TABLE ASYNC … VALIDATE CONSTRAINT …`); for those it gives the statement without the
//! keyword ([`Statement::rewrite`]) and what job DSQL would start ([`AsyncJob`]).
//!
//! The parser is `squawk-syntax`, PostgreSQL's grammar in pure Rust (no C library, no
//! libclang at build time); its lexer (`squawk-lexer`) finds the `ASYNC` keyword, which is cut
//! out by byte range before parsing, so a quoted `"async"`, or `ASYNC` inside a string literal
//! or a comment, is never touched. An unquoted `async` right after `INDEX` is always the
//! keyword: DSQL's index name is optional, so `CREATE INDEX ASYNC ON t (c)` is an unnamed
//! asynchronous index. The `syntax` module reads names and strings as the server does.
//!
//! A text with a syntax error is never judged as if it were fine ([`Classified::Unparsed`]).
//! One query or data change that no rule could refuse even if the server read it
//! (`harmless_if_run`) is forwarded as it is, so that PostgreSQL itself produces the syntax
//! error DSQL would. Any other such text is forwarded with a line the server cannot parse
//! appended ([`UNJUDGED_MARK`]): the server parses a whole text before it runs any of it, so
//! it answers the first real syntax error, at its real position, or, should its grammar accept
//! what the judge's did not, the mark's; either way none of the text runs.
//!
//! Every other text is judged whole, or refused ([`Classified::Unjudged`]): the judge has
//! stated limits.
//! - Size: [`MAX_TEXT`] bytes (10 MiB, DSQL's own protocol message limit, dsql-facts.md §3.4).
//! - Per statement, counted on its tokens before parsing: [`MAX_NESTING`] levels of
//!   parentheses and brackets, [`MAX_OPERATORS`] operators (the parser's time grows faster than
//!   linearly with long operator chains, and its recursion with nesting), [`MAX_DOTTED`] `.` in
//!   a row, and [`MAX_TOKENS`] tokens. A statement beyond a limit is not parsed
//!   (`beyond_the_parser`): a query whose tokens show that no rule applies to it passes,
//!   whatever its depth, and the server judges its own depth; any other such statement (not a
//!   query, or a query with `INTO`, a locking clause, `TABLESAMPLE`, a `U&` identifier, or a
//!   function name the judge watches) is refused with `54001`. Within the limits, the parse,
//!   the judgement and the drop of the tree run on a stack of at least [`JUDGE_STACK`] (grown
//!   with `stacker` when the caller's is smaller), so no text can overflow the caller's stack.

use std::cell::Cell;
use std::ops::Range;

use squawk_lexer::TokenKind;
use squawk_syntax::{SourceFile, SyntaxKind as K, SyntaxNode};

use super::guards;
pub(crate) use super::syntax::{Tok, significant_tokens};
use super::syntax::{
    child, ends_unterminated, has_child, has_custom_unicode_escape, has_token,
    has_unicode_identifier, kind_name, name_parts, string_constant, words,
};

/// SQLSTATE `feature_not_supported`, DSQL's answer to almost every refusal.
const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// SQLSTATE `undefined_object` (`type "serial" does not exist`).
const UNDEFINED_OBJECT: &str = "42704";
/// SQLSTATE `program_limit_exceeded`: a text larger than [`MAX_TEXT`].
const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// SQLSTATE `statement_too_complex`: a text nested deeper than the judge parses, PostgreSQL's
/// code for `stack depth limit exceeded`.
const STATEMENT_TOO_COMPLEX: &str = "54001";

/// The largest text judged, in bytes: DSQL's protocol message limit (about 10 MiB,
/// dsql-facts.md §3.4).
pub const MAX_TEXT: usize = 10 * 1024 * 1024;
/// The deepest nesting of parentheses and brackets in a statement the judge parses. The
/// parser recurses per level; at this depth a debug build uses a few MiB of stack.
pub const MAX_NESTING: usize = 1_000;
/// The most operator tokens (and `NOT`, `CASE`) in a statement the judge parses: the parser's
/// time grows faster than linearly with operator chains (measured, release build: 10,000
/// terms 0.26 s, 100,000 terms 24 s); at this number it parses in milliseconds.
pub const MAX_OPERATORS: usize = 3_000;
/// The longest chain of `.` the judge parses (`a.b.c…`): the parser's time grows with the
/// square of its length (measured, debug build: 1,000 fields 0.16 s, 4,000 fields 1.4 s).
/// A qualified name has at most three, a composite value's field access a few more.
pub const MAX_DOTTED: usize = 100;
/// The most tokens in a statement the judge parses (a 100,000-item `IN` list, about 200,000
/// tokens, parses in 85 ms in a release build).
pub const MAX_TOKENS: usize = 200_000;
/// The stack the judge runs on at least: the parse, the walks and the drop of the tree recurse
/// with the nesting, which [`MAX_NESTING`] and [`MAX_OPERATORS`] bound; a quarter of this
/// covers the deepest text they let through in a debug build. Reserved address space, only
/// touched as used.
pub const JUDGE_STACK: usize = 64 * 1024 * 1024;
/// What is appended to a multi-statement text with a syntax error before it is forwarded: a
/// statement no PostgreSQL grammar accepts, so that the server runs none of the text (see the
/// [module documentation](self)).
pub const UNJUDGED_MARK: &str = "\n;front_door_could_not_judge_the_text_before";

/// How [`classify`] judged a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// The text parsed: one entry per statement, in the order they appear.
    Parsed(Vec<Statement>),
    /// PostgreSQL's grammar rejects the text (or it cannot be scanned at all). Forward it so
    /// the backend answers with the real syntax error; `rewrite`, when present, is the text to
    /// forward instead, with DSQL's `ASYNC` keywords removed, so that the error names the same
    /// token DSQL's would (for example the `.` of a schema-qualified async index name).
    Unparsed {
        /// The text without its `ASYNC` keywords, if it had any.
        rewrite: Option<String>,
    },
    /// The text is beyond a limit of the judge (its size, or its nesting): refuse it whole.
    Unjudged(Refusal),
}

/// One statement of a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What kind of statement it is, for the relay's transaction rules.
    pub kind: Kind,
    /// Where the statement is in the original text, in bytes: leading and trailing whitespace
    /// and the closing `;` excluded (leading comments stay).
    pub span: Range<usize>,
    /// DSQL's answer if it refuses the statement; `None` if DSQL runs it.
    pub refusal: Option<Refusal>,
    /// For a statement with DSQL's `ASYNC` keyword: the same statement without it, ready for
    /// PostgreSQL (no trailing `;`). `None` for every other statement.
    pub rewrite: Option<String>,
    /// The asynchronous job the `ASYNC` keyword asks for; `Some` exactly when `rewrite` is.
    pub async_job: Option<AsyncJob>,
    /// For `SHOW name`: the parameter's name, in lower case.
    pub shows: Option<String>,
    /// The relations the statement names ([`relations`]).
    pub relations: Relations,
}

/// A relation a statement names: its schema if the name is qualified, and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation {
    /// The schema, for a qualified name.
    pub schema: Option<String>,
    /// The relation's own name.
    pub name: String,
}

/// The relations a statement names, as [`relations`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relations {
    /// These and no others (none for `SELECT 1`, `SET`, `DEALLOCATE ALL` …).
    Named(Vec<Relation>),
    /// Possibly any: a schema change that reaches relations its text does not name (`DROP
    /// INDEX i`, `DROP SCHEMA s CASCADE`, `CREATE FUNCTION`, `GRANT … ON ALL TABLES`), or a
    /// statement too deep to read.
    Unknown,
}

/// The kind of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Schema changes: `CREATE`, `ALTER`, `DROP`, `COMMENT`, `GRANT`, `REVOKE`, `SELECT INTO` …
    Ddl,
    /// Data changes: `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `TRUNCATE`, `COPY … FROM`.
    Dml,
    /// Reads: `SELECT`, `VALUES`, `TABLE`, `COPY … TO`.
    Query,
    /// Transaction control.
    Transaction(TxnKind),
    /// `SET` and `RESET` of a parameter, `SET TRANSACTION` included.
    Set,
    /// Other commands: `SHOW`, `EXPLAIN`, `CALL`, `DO`, `VACUUM`/`ANALYZE`, `LISTEN`, `LOCK`,
    /// `PREPARE`/`EXECUTE`, cursors, `SET CONSTRAINTS` …
    Utility,
    /// Anything else the grammar produces.
    Other,
}

/// The transaction-control statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// `BEGIN` or `START TRANSACTION`.
    Begin,
    /// `COMMIT` or `END`.
    Commit,
    /// `ROLLBACK` or `ABORT`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint,
    /// `RELEASE [SAVEPOINT] name`.
    Release,
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo,
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    TwoPhase,
}

/// The job DSQL starts for a statement with its `ASYNC` keyword; it answers a `job_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncJob {
    /// `CREATE [UNIQUE] INDEX ASYNC …`: the index is built in the background.
    IndexBuild,
    /// `ALTER TABLE ASYNC … VALIDATE CONSTRAINT …`: existing rows are checked in the background.
    ValidateConstraint,
}

/// DSQL's refusal of a statement: the SQLSTATE and message of its `ErrorResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The SQLSTATE, such as `0A000`.
    pub code: &'static str,
    /// The message, exactly as DSQL words it.
    pub message: String,
}

impl Refusal {
    /// A `0A000` refusal.
    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Self {
            code: FEATURE_NOT_SUPPORTED,
            message: message.into(),
        }
    }
}

/// Judges every statement of `sql` as Aurora DSQL would; see the [module documentation](self).
/// The work is done on a stack of at least [`JUDGE_STACK`], so that no text can overflow the
/// caller's.
pub fn classify(sql: &str) -> Classified {
    if sql.len() > MAX_TEXT {
        return Classified::Unjudged(Refusal {
            code: PROGRAM_LIMIT_EXCEEDED,
            message: format!("statement too large: at most {MAX_TEXT} bytes are checked"),
        });
    }
    stacker::maybe_grow(JUDGE_STACK / 4, JUDGE_STACK, || classify_here(sql))
}

/// [`classify`] on the caller's stack (the judge's own, or a function body's).
fn classify_here(sql: &str) -> Classified {
    let Some(tokens) = significant_tokens(sql) else {
        // An unterminated literal or comment: PostgreSQL's lexer fails on it too. A byte no
        // token starts with: with the mark, nothing runs even if the server reads it.
        return unparsed(sql, !ends_unterminated(sql));
    };
    if pieces(&tokens).any(|piece| beyond_limits(piece)) {
        return beyond_the_parser(sql, &tokens);
    }
    parse_and_judge(sql, &tokens)
}

/// The statements of a token list, split at its `;` tokens (empty ones left out). A `;` inside
/// a `BEGIN ATOMIC` body splits too, so a piece is at most one statement.
fn pieces<'t, 'a>(tokens: &'t [Tok<'a>]) -> impl Iterator<Item = &'t [Tok<'a>]> {
    tokens
        .split(|t| t.kind == TokenKind::Semi)
        .filter(|piece| !piece.is_empty())
}

/// Whether a statement's tokens exceed a limit of the parser ([`MAX_NESTING`],
/// [`MAX_OPERATORS`], [`MAX_DOTTED`], [`MAX_TOKENS`]).
fn beyond_limits(piece: &[Tok<'_>]) -> bool {
    if piece.len() > MAX_TOKENS {
        return true;
    }
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    let (mut dotted, mut longest_dotted) = (0usize, 0usize);
    for tok in piece {
        match tok.kind {
            TokenKind::Dot => {
                dotted += 1;
                longest_dotted = longest_dotted.max(dotted);
            }
            TokenKind::Ident | TokenKind::QuotedIdent { .. } | TokenKind::Star => {}
            _ => dotted = 0,
        }
        match tok.kind {
            TokenKind::OpenParen | TokenKind::OpenBracket => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            TokenKind::CloseParen | TokenKind::CloseBracket => depth = depth.saturating_sub(1),
            TokenKind::Plus
            | TokenKind::Minus
            | TokenKind::Star
            | TokenKind::Slash
            | TokenKind::Percent
            | TokenKind::Caret
            | TokenKind::Lt
            | TokenKind::Gt
            | TokenKind::Eq
            | TokenKind::Bang
            | TokenKind::Tilde
            | TokenKind::At
            | TokenKind::Pound
            | TokenKind::And
            | TokenKind::Or
            | TokenKind::Question
            | TokenKind::Colon => operators += 1,
            TokenKind::Ident if tok.is_word("not") || tok.is_word("case") => operators += 1,
            _ => {}
        }
    }
    deepest > MAX_NESTING || operators > MAX_OPERATORS || longest_dotted > MAX_DOTTED
}

/// The answer for a text with a syntax error; see the [module documentation](self). `several`:
/// whether the text may hold more than one statement.
fn unparsed(text: &str, several: bool) -> Classified {
    Classified::Unparsed {
        rewrite: several.then(|| format!("{text}{UNJUDGED_MARK}")),
    }
}

/// Parses a text within the limits and judges each statement.
fn parse_and_judge(sql: &str, tokens: &[Tok<'_>]) -> Classified {
    let cuts = async_keywords(sql, tokens);
    let text = without(sql, &cuts);
    let several = pieces(tokens).nth(1).is_some();
    let parse = SourceFile::parse(&text);
    let root = parse.syntax_node();
    if !parse.errors().is_empty() || root.children().any(|s| beyond_postgresql(&s)) {
        if several || !harmless_if_run(tokens) {
            if let Some(statement) = set_names(tokens) {
                return Classified::Parsed(vec![statement]);
            }
            return unparsed(&text, true);
        }
        return Classified::Unparsed {
            rewrite: (!cuts.is_empty()).then_some(text),
        };
    }
    if has_custom_unicode_escape(tokens) {
        // Not recorded, an assumption in DSQL's style: a name or string whose escape
        // character the judge does not decode could spell anything it watches.
        return Classified::Unjudged(Refusal::unsupported("UESCAPE not supported"));
    }
    let deep = needs_tree_walk(tokens);
    let mut statements = Vec::new();
    for node in root.children() {
        if node.kind() == K::EMPTY_STMT {
            continue;
        }
        let Some(range) = statement_range(&text, &node) else {
            continue;
        };
        let cut = cuts.iter().find(|c| range.contains(&c.at));
        let job = cut.map(|c| c.job);
        let (kind, refusal) = judge(&node, job, deep);
        let shows = (node.kind() == K::SHOW)
            .then(|| child(&node, K::CONFIG_PARAMETER_REF).and_then(|p| parameter_name(&p)))
            .flatten();
        statements.push(Statement {
            kind,
            span: original_offset(range.start, &cuts)..original_offset(range.end, &cuts),
            refusal,
            rewrite: cut.map(|_| text[range.clone()].to_owned()),
            async_job: job,
            shows,
            relations: relations(&node),
        });
    }
    Classified::Parsed(statements)
}

/// Whether one statement the parser cannot read would be harmless should the server read it:
/// a query or a data change (by its first word) without anything [`needs_tree_walk`] looks for
/// and, but for `INSERT`, without `INTO`. For those (nearly every real syntax error) the
/// server's own error comes back exactly; any other unreadable statement gets the mark.
fn harmless_if_run(tokens: &[Tok<'_>]) -> bool {
    let Some(first) = tokens.first() else {
        return true;
    };
    let insert = first.is_word("insert");
    let plain = ["select", "values", "with", "table", "update", "delete"]
        .iter()
        .any(|w| first.is_word(w))
        || first.kind == TokenKind::OpenParen;
    (insert || (plain && !tokens.iter().any(|t| t.is_word("into")))) && !needs_tree_walk(tokens)
}

/// `SET [SESSION | LOCAL] NAMES value` (the SQL standard's spelling of `SET client_encoding`,
/// which the parser does not read), judged on its tokens as that setting.
fn set_names(tokens: &[Tok<'_>]) -> Option<Statement> {
    let tokens = match tokens {
        [rest @ .., last] if last.kind == TokenKind::Semi => rest,
        all => all,
    };
    let rest = match tokens {
        [set, scope, rest @ ..]
            if set.is_word("set") && (scope.is_word("session") || scope.is_word("local")) =>
        {
            rest
        }
        [set, rest @ ..] if set.is_word("set") => rest,
        _ => return None,
    };
    let [names, value] = rest else {
        return None;
    };
    if !names.is_word("names") {
        return None;
    }
    let refusal = if value.is_word("default") {
        guards::setting_refusal("client_encoding", None, true)
    } else {
        let read = if value.is_string() {
            super::syntax::string_value(value.text)
        } else {
            super::syntax::identifier(value.text)
        };
        guards::setting_refusal("client_encoding", read.as_deref(), false)
    };
    let first = tokens.first()?;
    Some(Statement {
        kind: Kind::Set,
        span: first.range.start..value.range.end,
        refusal,
        rewrite: None,
        async_job: None,
        shows: None,
        relations: Relations::Named(Vec::new()),
    })
}

/// Whether a statement the parser accepts is a syntax error to PostgreSQL (and DSQL): a
/// schema-qualified index name (`CREATE INDEX [ASYNC] public.i …`: DSQL's syntax error is at
/// the ".", and so is the server's once ASYNC is gone), or `GROUP BY ALL` (PostgreSQL 19
/// syntax; DSQL's `syntax error at end of input`, `queries.json`). Such a text is treated as
/// one that does not parse, so that the server gives the syntax error.
fn beyond_postgresql(node: &SyntaxNode) -> bool {
    match node.kind() {
        K::CREATE_INDEX => {
            child(node, K::INDEX).is_some_and(|index| words(&index).any(|t| t.kind() == K::DOT))
        }
        _ => node.descendants().any(|n| {
            n.kind() == K::GROUP_BY_CLAUSE && {
                let mut items = n.children();
                items.next().is_some_and(|first| first.kind() == K::ALL) && items.next().is_none()
            }
        }),
    }
}

/// The statement's byte range in `text`: its node's range without surrounding whitespace and
/// the closing `;`.
fn statement_range(text: &str, node: &SyntaxNode) -> Option<Range<usize>> {
    let range = node.text_range();
    let start = usize::from(range.start());
    let end = usize::from(range.end());
    let slice = text.get(start..end)?;
    let trimmed = slice.trim_end();
    let trimmed = trimmed.strip_suffix(';').unwrap_or(trimmed).trim_end();
    let lead = trimmed.len() - trimmed.trim_start().len();
    Some(start + lead..start + trimmed.len().max(lead))
}

/// Judges a text with a statement beyond the parser's limits statement by statement: each
/// statement within them is judged as usual; one beyond is accepted only if its tokens alone
/// show that no rule can refuse it, and the text is refused otherwise ([`too_deep`]).
///
/// Such a statement must be a query (it starts with `SELECT`, `VALUES`, `WITH`, `TABLE` or
/// `(`) without `INTO` (DSQL refuses `SELECT … INTO`; a DML CTE's `INSERT INTO` is refused
/// with it, for want of a tree) and without anything [`needs_tree_walk`] looks for (locking
/// clauses, `TABLESAMPLE`, `U&` identifiers, the functions [`guards`] judges): for a query,
/// every other rule of this module needs the statement's tree, which has none of them. A rule
/// added to the tree walk must be added to that look at the tokens too.
fn beyond_the_parser(sql: &str, tokens: &[Tok<'_>]) -> Classified {
    let mut statements = Vec::new();
    for piece in pieces(tokens) {
        let (Some(first), Some(last)) = (piece.first(), piece.last()) else {
            continue;
        };
        let span = first.range.start..last.range.end;
        if !beyond_limits(piece) {
            let text = &sql[span.clone()];
            match parse_and_judge(text, piece_tokens(piece, span.start).as_slice()) {
                Classified::Parsed(parsed) => {
                    statements.extend(parsed.into_iter().map(|s| Statement {
                        span: s.span.start + span.start..s.span.end + span.start,
                        ..s
                    }));
                    continue;
                }
                // A piece that does not parse alone (a `;` inside BEGIN ATOMIC … END) or at
                // all.
                _ => return Classified::Unjudged(too_deep()),
            }
        }
        let query = first.is_word("select")
            || first.is_word("values")
            || first.is_word("with")
            || first.is_word("table")
            || first.kind == TokenKind::OpenParen;
        if !query || needs_tree_walk(piece) || piece.iter().any(|t| t.is_word("into")) {
            return Classified::Unjudged(too_deep());
        }
        statements.push(Statement {
            kind: Kind::Query,
            span,
            refusal: None,
            rewrite: None,
            async_job: None,
            shows: None,
            relations: Relations::Unknown,
        });
    }
    Classified::Parsed(statements)
}

/// A piece's tokens with their ranges relative to the piece's start.
fn piece_tokens<'a>(piece: &[Tok<'a>], start: usize) -> Vec<Tok<'a>> {
    piece
        .iter()
        .map(|t| Tok {
            kind: t.kind,
            range: t.range.start - start..t.range.end - start,
            text: t.text,
        })
        .collect()
}

/// The refusal of a text nested deeper than the judge parses.
fn too_deep() -> Refusal {
    Refusal {
        code: STATEMENT_TOO_COMPLEX,
        message: "statement too deeply nested to be checked (stack depth limit exceeded)".into(),
    }
}

/// The first refusal of `sql`, judged on this stack: an SQL function's body, or the query a
/// function runs from text. Text that does not parse is left to the server, which cannot
/// run it either.
///
/// Such texts nest (a body calling `query_to_xml('…')` on a text that does the same, with
/// dollar quotes that need no doubling); one nested deeper than [`MAX_EMBEDDED`] is refused
/// as too deep, so that the judge's work and stack stay bounded.
fn first_refusal(sql: &str) -> Option<Refusal> {
    let depth = EMBEDDED.with(Cell::get);
    if depth >= MAX_EMBEDDED {
        return Some(too_deep());
    }
    EMBEDDED.with(|d| d.set(depth + 1));
    let answer = stacker::maybe_grow(JUDGE_STACK / 4, JUDGE_STACK, || match classify_here(sql) {
        Classified::Parsed(statements) => statements.into_iter().find_map(|s| s.refusal),
        Classified::Unparsed { .. } => None,
        Classified::Unjudged(refusal) => Some(refusal),
    });
    EMBEDDED.with(|d| d.set(depth));
    answer
}

/// The deepest nesting of SQL texts inside SQL texts (function bodies, the queries of
/// `query_to_xml` and the like) the judge reads.
pub const MAX_EMBEDDED: usize = 8;

thread_local! {
    /// How deep in embedded SQL texts the judge on this thread is.
    static EMBEDDED: Cell<usize> = const { Cell::new(0) };
}

/// Whether `sql` is one transaction-control statement of the kind `kind`.
pub(crate) fn is_lone(sql: &str, kind: TxnKind) -> bool {
    matches!(
        classify(sql),
        Classified::Parsed(statements)
            if matches!(statements.as_slice(), [s] if s.kind == Kind::Transaction(kind))
    )
}

// ---------------------------------------------------------------------------------------------
// The ASYNC keyword, found with the lexer.

/// A DSQL `ASYNC` keyword cut out of the text.
struct Cut {
    /// Bytes removed from the original text: the keyword and the whitespace after it.
    removed: Range<usize>,
    /// Where the cut is in the text without the keywords.
    at: usize,
    /// The job the keyword asks for.
    job: AsyncJob,
}

/// What may follow `ALTER TABLE name`: if one of these words follows `ALTER TABLE async`, then
/// `async` is the table's name, not DSQL's keyword (`ALTER TABLE async ADD COLUMN c int`).
const ALTER_TABLE_CONTINUATIONS: &[&str] = &[
    "add", "alter", "attach", "cluster", "detach", "disable", "drop", "enable", "force", "inherit",
    "merge", "no", "not", "of", "owner", "rename", "replica", "reset", "set", "validate",
];

/// Whether `tok` may follow a table's name in `ALTER TABLE` ([`ALTER_TABLE_CONTINUATIONS`],
/// `*`, `.`, `;`).
fn continues_alter_table(tok: &Tok<'_>) -> bool {
    matches!(tok.kind, TokenKind::Star | TokenKind::Dot | TokenKind::Semi)
        || ALTER_TABLE_CONTINUATIONS.iter().any(|w| tok.is_word(w))
}

/// Every DSQL `ASYNC` keyword in the text: an unquoted `async` right after
/// `CREATE [UNIQUE] INDEX`, or after `ALTER TABLE` when it is not the table's name.
fn async_keywords(sql: &str, tokens: &[Tok<'_>]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    let mut removed_so_far = 0;
    for (i, tok) in tokens.iter().enumerate() {
        if !tok.is_word("async") || i < 2 {
            continue;
        }
        let word = |back: usize, w: &str| {
            tokens
                .get(i.wrapping_sub(back))
                .is_some_and(|t| t.is_word(w))
        };
        let job = if word(1, "index")
            && (word(2, "create") || (word(2, "unique") && word(3, "create")))
        {
            AsyncJob::IndexBuild
        } else if word(1, "table")
            && word(2, "alter")
            && tokens
                .get(i + 1)
                .is_some_and(|next| !continues_alter_table(next))
        {
            AsyncJob::ValidateConstraint
        } else {
            continue;
        };
        let rest = &sql[tok.range.end..];
        let end = tok.range.end + (rest.len() - rest.trim_start().len());
        cuts.push(Cut {
            removed: tok.range.start..end,
            at: tok.range.start - removed_so_far,
            job,
        });
        removed_so_far += end - tok.range.start;
    }
    cuts
}

/// The text with the cut ranges removed.
fn without(sql: &str, cuts: &[Cut]) -> String {
    let mut text = String::with_capacity(sql.len());
    let mut from = 0;
    for cut in cuts {
        text.push_str(&sql[from..cut.removed.start]);
        from = cut.removed.end;
    }
    text.push_str(&sql[from..]);
    text
}

/// Maps an offset in the text without the keywords back to the original text.
fn original_offset(offset: usize, cuts: &[Cut]) -> usize {
    offset
        + cuts
            .iter()
            .filter(|c| c.at < offset)
            .map(|c| c.removed.len())
            .sum::<usize>()
}

/// Whether a refusal may hide anywhere in the tree (a locking clause other than
/// `FOR UPDATE`/`FOR KEY SHARE`, `TABLESAMPLE`, or a function [`guards::node_refusal`] judges):
/// a cheap look at the tokens decides whether the deeper walk of [`tree_refusal`] is worth
/// doing. A Unicode-escaped identifier (`U&"…"`) may spell any name, so it always is.
fn needs_tree_walk(tokens: &[Tok<'_>]) -> bool {
    tokens
        .windows(2)
        .any(|pair| pair[0].is_word("for") && (pair[1].is_word("share") || pair[1].is_word("no")))
        || has_unicode_identifier(tokens)
        || tokens.iter().any(|t| {
            t.is_word("tablesample")
                || (matches!(t.kind, TokenKind::Ident | TokenKind::QuotedIdent { .. })
                    && guards::is_watched(t.text))
        })
}

// ---------------------------------------------------------------------------------------------
// The rules.

/// The kind of one parsed statement and DSQL's refusal of it, if any.
fn judge(node: &SyntaxNode, job: Option<AsyncJob>, deep: bool) -> (Kind, Option<Refusal>) {
    let refusal =
        statement_refusal(node, job).or_else(|| if deep { tree_refusal(node) } else { None });
    (kind_of(node), refusal)
}

/// The kind of a statement.
fn kind_of(node: &SyntaxNode) -> Kind {
    let name = kind_name(node);
    match name.as_str() {
        "SELECT_INTO" => Kind::Ddl,
        "SELECT" | "PAREN_SELECT" | "COMPOUND_SELECT" | "VALUES" | "TABLE" => Kind::Query,
        "COPY" if has_child(node, K::COPY_TO) => Kind::Query,
        "COPY" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE" => Kind::Dml,
        "BEGIN" => Kind::Transaction(TxnKind::Begin),
        "COMMIT" | "COMMIT_TRANSACTION" => Kind::Transaction(TxnKind::Commit),
        "ROLLBACK" | "ROLLBACK_TRANSACTION" => Kind::Transaction(TxnKind::Rollback),
        "SAVEPOINT_CREATE" => Kind::Transaction(TxnKind::Savepoint),
        "RELEASE_SAVEPOINT" => Kind::Transaction(TxnKind::Release),
        "ROLLBACK_TO_SAVEPOINT" => Kind::Transaction(TxnKind::RollbackTo),
        "PREPARE_TRANSACTION" | "COMMIT_PREPARED" | "ROLLBACK_PREPARED" => {
            Kind::Transaction(TxnKind::TwoPhase)
        }
        "SET" | "SET_TRANSACTION" | "RESET" | "SET_ROLE" | "SET_SESSION_AUTH" | "RESET_ROLE"
        | "RESET_SESSION_AUTH" => Kind::Set,
        "SHOW" | "EXPLAIN" | "VACUUM" | "ANALYZE" | "CALL" | "DO" | "LISTEN" | "NOTIFY"
        | "UNLISTEN" | "LOCK" | "PREPARE" | "EXECUTE" | "DEALLOCATE" | "DISCARD" | "CHECKPOINT"
        | "LOAD" | "SET_CONSTRAINTS" | "DECLARE" | "FETCH" | "MOVE" | "CLOSE" | "CLUSTER"
        | "REINDEX" | "REFRESH" | "ALTER_SYSTEM" => Kind::Utility,
        "GRANT"
        | "REVOKE"
        | "COMMENT_ON"
        | "SECURITY_LABEL"
        | "REASSIGN"
        | "DROP_OWNED"
        | "IMPORT_FOREIGN_SCHEMA" => Kind::Ddl,
        other
            if other.starts_with("CREATE_")
                || other.starts_with("ALTER_")
                || other.starts_with("DROP_") =>
        {
            Kind::Ddl
        }
        _ => Kind::Other,
    }
}

/// The relations `node` names, for the front door's schema conflicts (`conflicts.rs`): every
/// relation its text names (a table, view or sequence name or reference anywhere in its tree,
/// the new name of a renamed one), or [`Relations::Unknown`] for a schema change whose reach its
/// text does not show (any DDL not listed here). A name is the text's (unqualified stays
/// unqualified: the caller matches it with every schema); a name may repeat. Functions and
/// sequences named in strings (`nextval('s')`) are not relations here.
pub fn relations(node: &SyntaxNode) -> Relations {
    let known = match kind_name(node).as_str() {
        "DROP_TABLE"
        | "DROP_VIEW"
        | "DROP_MATERIALIZED_VIEW"
        | "DROP_SEQUENCE"
        | "CREATE_TABLE"
        | "CREATE_INDEX"
        | "CREATE_VIEW"
        | "CREATE_SEQUENCE" => true,
        // SET SCHEMA moves the relation where its text does not say.
        "ALTER_TABLE" | "ALTER_VIEW" | "ALTER_MATERIALIZED_VIEW" | "ALTER_SEQUENCE" => {
            !has_child(node, K::SET_SCHEMA)
        }
        // Privileges on named relations; not `ON ALL TABLES IN SCHEMA`, nor other objects.
        "GRANT" | "REVOKE" => child(node, K::ON_PRIVILEGE_OBJECTS_CLAUSE).is_some_and(|on| {
            !words(&on).any(|t| t.kind() == K::SCHEMA_KW)
                && on.descendants().any(|n| n.kind() == K::RELATION_NAME_REF)
        }),
        _ => kind_of(node) != Kind::Ddl,
    };
    if !known {
        return Relations::Unknown;
    }
    let mut named: Vec<Relation> = Vec::new();
    for n in node.descendants() {
        let relation = matches!(
            n.kind(),
            K::RELATION_NAME_REF
                | K::TABLE_NAME_REF
                | K::TABLE_NAME
                | K::VIEW
                | K::VIEW_REF
                | K::SEQUENCE
                | K::SEQUENCE_REF
        );
        if !relation {
            continue;
        }
        let renamed = matches!(
            n.parent().map(|p| p.kind()),
            Some(K::TABLE_RENAME_TO | K::VIEW_RENAME_TO | K::SEQUENCE_RENAME_TO)
        );
        let path = n
            .descendants()
            .find(|p| matches!(p.kind(), K::PATH_REF | K::PATH));
        let Some(mut parts) = path.as_ref().and_then(name_parts) else {
            return Relations::Unknown;
        };
        let Some(last) = parts.pop() else {
            continue;
        };
        // A renamed relation keeps its schema.
        let schema = if renamed {
            named.first().and_then(|r| r.schema.clone())
        } else {
            parts.pop()
        };
        named.push(Relation { schema, name: last });
    }
    Relations::Named(named)
}

/// Statements DSQL refuses whatever they say, and the message it answers: the table of
/// fixed refusals. Recorded in `unsupported.json`, `enum.json`, `queries.json` unless noted.
fn fixed_refusal(node: &SyntaxNode) -> Option<&'static str> {
    Some(match kind_name(node).as_str() {
        "TRUNCATE" => "unsupported statement: Truncate",
        "CREATE_EXTENSION" => "unsupported statement: CreateExtension",
        "CREATE_DATABASE" => "unsupported statement: Createdb",
        "CREATE_TABLESPACE" => "unsupported statement: CreateTableSpace",
        "CREATE_FOREIGN_TABLE" => "unsupported statement: CreateForeignTable",
        "CREATE_TYPE" if has_child(node, K::COMPOSITE_TYPE) => {
            "unsupported statement: CompositeType"
        }
        "CREATE_TYPE" if has_child(node, K::RANGE_TYPE) => "unsupported statement: CreateRange",
        // Not recorded for a shell or base type (CREATE TYPE t; CREATE TYPE t (INPUT = …)):
        // the wording recorded for an enum.
        "CREATE_TYPE" => "CREATE TYPE not supported",
        "LISTEN" => "unsupported statement: Listen",
        "NOTIFY" => "unsupported statement: Notify",
        "UNLISTEN" => "unsupported statement: Unlisten",
        "ALTER_SYSTEM" => "unsupported statement: AlterSystem",
        // CREATE MATERIALIZED VIEW and CREATE TABLE … AS are one node inside PostgreSQL.
        "CREATE_TABLE_AS" | "CREATE_MATERIALIZED_VIEW" => "unsupported statement: CreateTableAs",
        // Not recorded: SELECT … INTO becomes the same node as CREATE TABLE … AS inside
        // PostgreSQL, so it is given that statement's recorded answer.
        "SELECT_INTO" => "unsupported statement: CreateTableAs",
        // Not recorded (no DO block was probed): DSQL's generic wording, "unsupported
        // statement: " and PostgreSQL's node name, as for LISTEN or TRUNCATE.
        "DO" => "unsupported statement: Do",
        // Not in these recordings: observed by the Django adapter (dsql-facts.md §1.1).
        "DECLARE" => "unsupported statement: DeclareCursor",
        "CREATE_TRIGGER" => "CREATE TRIGGER not supported",
        // Recorded for ADD VALUE; RENAME TO is PostgreSQL's RenameStmt, whose recorded wording
        // for a type is the RENAME one.
        "ALTER_TYPE" if has_child(node, K::TYPE_RENAME_TO) => {
            "unsupported object in RENAME statement"
        }
        // Not recorded: the other forms of ALTER TYPE get the wording recorded for ADD VALUE.
        "ALTER_TYPE" => "ALTER TYPE not supported",
        "DROP_TYPE" => "unsupported object in DROP statement",
        "VACUUM" => "unsupported VACUUM statement",
        "MERGE" => "unsupported statement type: MERGE",
        // Not recorded: DSQL has no LOAD (dsql-facts.md §1.1), which reads a library from the
        // server's files; the generic wording.
        "LOAD" => "unsupported statement: Load",
        _ => return None,
    })
}

/// DSQL's refusal of the statement itself, judged from its node.
fn statement_refusal(node: &SyntaxNode, job: Option<AsyncJob>) -> Option<Refusal> {
    if let Some(message) = fixed_refusal(node) {
        return Some(Refusal::unsupported(message));
    }
    if let Some(refusal) = guards::role_refusal(node) {
        return Some(refusal);
    }
    match node.kind() {
        K::CREATE_TABLE => create_table(node),
        K::ALTER_TABLE => alter_table(node, job),
        K::CREATE_INDEX => create_index(node, job),
        K::CREATE_SEQUENCE => cache_refusal(node, SEQUENCE_CACHE),
        K::CREATE_FUNCTION => create_function(node),
        // Not in these recordings: dsql-facts.md §1.1 (DSQL troubleshooting guide, observed on
        // a cluster); the in-server rules use it too.
        K::CREATE_PROCEDURE => Some(Refusal::unsupported("PROCEDURE is not supported")),
        K::ALTER_FUNCTION
        | K::ALTER_PROCEDURE
        | K::ALTER_ROLE
        | K::ALTER_USER
        | K::ALTER_DATABASE => settings_refusal(node),
        K::SAVEPOINT_CREATE => Some(Refusal::unsupported(
            "unsupported transaction statement: SAVEPOINT",
        )),
        // Not in these recordings (SAVEPOINT and ROLLBACK TO are): the same wording.
        K::RELEASE_SAVEPOINT => Some(Refusal::unsupported(
            "unsupported transaction statement: RELEASE",
        )),
        K::ROLLBACK_TO_SAVEPOINT => Some(Refusal::unsupported(
            "unsupported transaction statement: ROLLBACK TO",
        )),
        K::BEGIN => isolation_refusal(node),
        K::SET_TRANSACTION => Some(set_transaction(node)),
        K::SET => child(node, K::SET_CONFIG).and_then(|c| set_config_refusal(&c)),
        K::RESET => reset_refusal(node),
        K::SHOW => show(node),
        K::COPY => guards::copy_refusal(node),
        _ => guards::definition_refusal(node),
    }
}

/// `CREATE TABLE`: TEMP and UNLOGGED tables, then each column (`unsupported.json`).
fn create_table(node: &SyntaxNode) -> Option<Refusal> {
    if has_child(node, K::TEMP) {
        return Some(Refusal::unsupported(
            "TEMPORARY or TEMP table not supported for CREATE TABLE",
        ));
    }
    if has_child(node, K::UNLOGGED) {
        return Some(Refusal::unsupported(
            "UNLOGGED table not supported for CREATE TABLE",
        ));
    }
    child(node, K::TABLE_ARG_LIST)?
        .children()
        .filter(|c| c.kind() == K::COLUMN)
        .find_map(|column| column_type_refusal(&column).or_else(|| identity_refusal(&column)))
}

/// The constraint nodes of a column (`NOT NULL`, `DEFAULT`, `CHECK`, `REFERENCES`, …; not
/// `COLLATE`, nor `STORAGE`, nor `COMPRESSION`).
fn column_constraints(column: &SyntaxNode) -> impl Iterator<Item = SyntaxNode> {
    column
        .children()
        .filter(|c| kind_name(c).ends_with("_CONSTRAINT"))
}

/// `ALTER TABLE`: the forms `alters.json` and `backlog.json` record as refused.
fn alter_table(node: &SyntaxNode, job: Option<AsyncJob>) -> Option<Refusal> {
    node.children().find_map(|action| match action.kind() {
        K::ADD_COLUMN => column_type_refusal(&action).or_else(|| {
            // A DEFAULT alone counts as a constraint too (backlog.json).
            column_constraints(&action).next().map(|_| {
                Refusal::unsupported("ALTER TABLE ADD COLUMN with constraint not supported")
            })
        }),
        // UNIQUE USING INDEX is accepted (its 55000 while the index builds is state).
        K::ADD_CONSTRAINT
            if !action
                .descendants()
                .any(|n| matches!(n.kind(), K::NOT_VALID | K::USING_INDEX_NAME)) =>
        {
            Some(Refusal::unsupported(
                "unsupported ALTER TABLE ADD CONSTRAINT statement",
            ))
        }
        K::ALTER_COLUMN if has_child(&action, K::SET_TYPE) => Some(Refusal::unsupported(
            "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement",
        )),
        // Not recorded: ALTER COLUMN … ADD GENERATED … AS IDENTITY is documented as needing
        // the same explicit CACHE as an identity column in CREATE TABLE.
        K::ALTER_COLUMN => child(&action, K::ADD_GENERATED)
            .and_then(|generated| cache_refusal(&generated, IDENTITY_CACHE)),
        K::VALIDATE_CONSTRAINT if job != Some(AsyncJob::ValidateConstraint) => Some(
            Refusal::unsupported("unsupported ALTER TABLE VALIDATE CONSTRAINT statement"),
        ),
        _ => None,
    })
}

/// `CREATE INDEX`: only the `ASYNC` form (`index.json`).
fn create_index(node: &SyntaxNode, job: Option<AsyncJob>) -> Option<Refusal> {
    if job != Some(AsyncJob::IndexBuild) {
        return Some(Refusal::unsupported(
            if has_token(node, K::CONCURRENTLY_KW) {
                // Not in these recordings: dsql-facts.md §2.3 (observed on a cluster).
                "CONCURRENTLY not supported for CREATE INDEX"
            } else {
                "unsupported mode. please use CREATE INDEX ASYNC."
            },
        ));
    }
    // Not in these recordings: dsql-facts.md §2.3 (the documentation and a cluster observation).
    child(node, K::PARTITION_ITEM_LIST)?
        .children()
        .find_map(|item| {
            if has_child(&item, K::OP_CLASS_REF) {
                Some(Refusal::unsupported("opclass not supported for index keys"))
            } else if has_child(&item, K::SORT_ASC) || has_child(&item, K::SORT_DESC) {
                Some(Refusal::unsupported(
                    "specifying sort order not supported for index keys",
                ))
            } else {
                None
            }
        })
}

/// DSQL's refusal of a sequence without an explicit `CACHE` of 1 or at least 65536
/// (`supported.json`).
const SEQUENCE_CACHE: &str = "CREATE SEQUENCE is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1";
/// The same for an identity column (`supported.json`).
const IDENTITY_CACHE: &str = "identity column is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1";

/// SQLSTATE `invalid_parameter_value`, for a `CACHE` of the wrong size. Not recorded: DSQL's
/// message for it is known from a live cluster (dsql-facts.md §1.1) and AWS's SQLAlchemy adapter
/// expects a data error (class 22); PostgreSQL gives its own `CACHE (n) must be greater than
/// zero` this code, and DSQL's message follows that one's form, so it is assumed to be this.
const INVALID_PARAMETER_VALUE: &str = "22023";

/// Refuses unless the sequence options under `node` set `CACHE` to 1 or at least 65536:
/// without `CACHE`, with `missing` (recorded, `0A000`); with another size, with DSQL's
/// `CACHE (n) must be greater than or equal to 65536 or equal to 1` ([`INVALID_PARAMETER_VALUE`]).
fn cache_refusal(node: &SyntaxNode, missing: &'static str) -> Option<Refusal> {
    let Some(option) = node.descendants().find(|n| n.kind() == K::OPTION_CACHE) else {
        return Some(Refusal::unsupported(missing));
    };
    // The value as written (`-5`, `99999999999`), without the keyword.
    let written: String = words(&option)
        .filter(|t| t.kind() != K::CACHE_KW)
        .map(|t| t.text().to_owned())
        .collect();
    match written.replace('_', "").parse::<f64>() {
        Ok(n) if n == 1.0 || n >= 65536.0 => None,
        _ => Some(Refusal {
            code: INVALID_PARAMETER_VALUE,
            message: format!(
                "CACHE ({written}) must be greater than or equal to 65536 or equal to 1"
            ),
        }),
    }
}

/// An identity column must be `bigint` and have an explicit CACHE (`supported.json`). The
/// type is checked first, as the in-server rules do (no recording has both faults).
fn identity_refusal(column: &SyntaxNode) -> Option<Refusal> {
    let identity = column_constraints(column).find(|c| {
        c.kind() == K::GENERATED_CONSTRAINT && words(c).any(|t| t.kind() == K::IDENTITY_KW)
    })?;
    match column_type(column).map(|t| t.builtin) {
        Some(Some(name)) if name != "int8" => Some(Refusal::unsupported(format!(
            "datatype {} not supported, identity column type must be bigint",
            display_type(&name)
        ))),
        Some(None) => column_type(column).map(|t| {
            Refusal::unsupported(format!(
                "datatype {} not supported, identity column type must be bigint",
                t.last
            ))
        }),
        _ => cache_refusal(&identity, IDENTITY_CACHE),
    }
}

/// Column types DSQL refuses in `CREATE TABLE` and `ADD COLUMN` (`types.json`), by
/// PostgreSQL's internal name. Recorded: money, xml, inet, cidr, macaddr, the geometric types,
/// tsvector, tsquery, int4range, tsrange, bit, varbit, pg_lsn. Not recorded, refused with the
/// same wording because the in-server rules refuse them for the same reason (same type
/// category): macaddr8, the other built-in ranges and multiranges, txid_snapshot, pg_snapshot.
const UNSUPPORTED_COLUMN_TYPES: &[&str] = &[
    "money",
    "xml",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "tsvector",
    "tsquery",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
    "bit",
    "varbit",
    "pg_lsn",
    "txid_snapshot",
    "pg_snapshot",
];

/// The serial pseudo-types, which do not exist on DSQL (`unsupported.json`, `alters.json`).
const SERIAL_TYPES: &[&str] = &[
    "serial",
    "bigserial",
    "smallserial",
    "serial2",
    "serial4",
    "serial8",
];

/// A column's type as the rules read it.
struct ColumnType {
    /// PostgreSQL's internal name of a built-in type (`int4` for `integer`, `varbit` for
    /// `bit varying`); `None` for a type in another schema.
    builtin: Option<String>,
    /// The last part of its name as written, for a type that is not built in.
    last: String,
    /// Whether it is an array of that type.
    array: bool,
}

/// The type node of a column (or of `ADD COLUMN`).
fn type_node(column: &SyntaxNode) -> Option<SyntaxNode> {
    column.children().find(|c| kind_name(c).ends_with("_TYPE"))
}

/// The type of a column, its name normalised as PostgreSQL's parser does (the tree keeps it as
/// written: `int`, `integer`, `int4` and `pg_catalog.int4` are one type).
fn column_type(column: &SyntaxNode) -> Option<ColumnType> {
    let node = type_node(column)?;
    if node.kind() == K::ARRAY_TYPE {
        let element = type_node(&node)?;
        let (builtin, last) = type_name(&element)?;
        return Some(ColumnType {
            builtin,
            last,
            array: true,
        });
    }
    let (builtin, last) = type_name(&node)?;
    Some(ColumnType {
        builtin,
        last,
        array: false,
    })
}

/// The internal name of a type node (if built in) and the last part of its name.
fn type_name(node: &SyntaxNode) -> Option<(Option<String>, String)> {
    let zone = || child(node, K::WITH_TIMEZONE).is_some();
    let fixed = |name: &str| Some((Some(name.to_owned()), name.to_owned()));
    match node.kind() {
        K::BIT_VARYING_TYPE => fixed("varbit"),
        K::BIT_TYPE => fixed("bit"),
        K::DOUBLE_TYPE => fixed("float8"),
        K::VARCHAR_TYPE => fixed("varchar"),
        K::CHARACTER_TYPE => fixed("bpchar"),
        K::INTERVAL_TYPE => fixed("interval"),
        K::TIMESTAMP_TYPE => fixed(if zone() { "timestamptz" } else { "timestamp" }),
        K::TIME_TYPE => fixed(if zone() { "timetz" } else { "time" }),
        K::PATH_TYPE => {
            let path = child(node, K::PATH_REF)?;
            let parts = name_parts(&path)?;
            let last = parts.last()?.clone();
            let builtin = match parts.as_slice() {
                [name] => Some(normalized_type(name, node)),
                [schema, name] if schema == "pg_catalog" => Some(name.clone()),
                _ => None,
            };
            Some((builtin, last))
        }
        _ => None,
    }
}

/// PostgreSQL's internal name for an unqualified type name written in SQL's keyword forms
/// (`integer`, `float(24)`, `boolean`, `decimal` …); other names as they are.
fn normalized_type(name: &str, node: &SyntaxNode) -> String {
    let precision = || {
        child(node, K::ARG_LIST)
            .map(|args| args.text().to_string())
            .and_then(|t| {
                t.trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
                    .parse::<u32>()
                    .ok()
            })
    };
    match name {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "float" => match precision() {
            Some(p) if p <= 24 => "float4",
            _ => "float8",
        },
        "float8" => "float8",
        "bool" | "boolean" => "bool",
        "decimal" | "numeric" => "numeric",
        other => other,
    }
    .to_owned()
}

/// DSQL's refusal of a column's type: serial, arrays, and [`UNSUPPORTED_COLUMN_TYPES`].
/// A type DSQL lacks for want of a definition (an enum never created) is left to the backend,
/// which answers the same 42704.
fn column_type_refusal(column: &SyntaxNode) -> Option<Refusal> {
    let ty = column_type(column)?;
    let builtin = ty.builtin.as_deref();
    if let Some(serial) = builtin.filter(|n| SERIAL_TYPES.contains(n)) {
        return Some(Refusal {
            code: UNDEFINED_OBJECT,
            message: format!("type \"{serial}\" does not exist"),
        });
    }
    let display = display_type(builtin.unwrap_or(&ty.last));
    if ty.array {
        return Some(Refusal::unsupported(format!(
            "datatype {display}[] not supported"
        )));
    }
    builtin
        .filter(|n| UNSUPPORTED_COLUMN_TYPES.contains(n))
        .map(|_| Refusal::unsupported(format!("datatype {display} not supported")))
}

/// A type's name as PostgreSQL's `format_type` writes it, which is how DSQL's messages name
/// types (`datatype integer[] not supported`, `datatype bit varying not supported`).
fn display_type(name: &str) -> &str {
    match name {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "varbit" => "bit varying",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        other => other,
    }
}

/// `CREATE FUNCTION` in a language other than sql (`unsupported.json`), its `SET` clauses,
/// and an SQL body given as a string, judged as the statements it runs.
fn create_function(node: &SyntaxNode) -> Option<Refusal> {
    let options = child(node, K::FUNC_OPTION_LIST);
    let language = options
        .iter()
        .flat_map(SyntaxNode::children)
        .find(|o| o.kind() == K::LANGUAGE_FUNC_OPTION)
        .and_then(|option| {
            option.children().find_map(|c| match c.kind() {
                K::LANGUAGE_REF => name_parts(&c).and_then(|p| p.last().cloned()),
                K::LITERAL => string_constant(&c),
                _ => None,
            })
        });
    // Only plpgsql is recorded; every other language gets the same wording.
    if let Some(language) = language.filter(|l| !l.eq_ignore_ascii_case("sql")) {
        return Some(Refusal::unsupported(format!(
            "CREATE FUNCTION with language {language} not supported"
        )));
    }
    settings_refusal(node).or_else(|| {
        // A body in `BEGIN ATOMIC … END` is part of the tree already.
        options
            .iter()
            .flat_map(SyntaxNode::children)
            .filter(|o| o.kind() == K::AS_FUNC_OPTION)
            .flat_map(|o| o.descendants())
            .find(|n| n.kind() == K::LITERAL)
            .and_then(|body| string_constant(&body))
            .and_then(|body| first_refusal(&body))
    })
}

/// The `SET` and `RESET` clauses of `CREATE`/`ALTER FUNCTION`, `ALTER ROLE` and `ALTER
/// DATABASE`, which hold while the function runs or the role is logged in: judged as `SET`
/// and `RESET` statements.
fn settings_refusal(node: &SyntaxNode) -> Option<Refusal> {
    let options = child(node, K::FUNC_OPTION_LIST);
    node.children()
        .chain(options.iter().flat_map(SyntaxNode::children))
        .flat_map(|c| {
            if matches!(
                kind_name(&c).as_str(),
                "SET_FUNC_OPTION" | "RESET_FUNC_OPTION"
            ) {
                c.children().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .find_map(|clause| match kind_name(&clause).as_str() {
            "SET_CONFIG_PARAM" => set_config_refusal(&clause),
            "RESET_CONFIG_PARAM" | "RESET_FUNC_OPTION" => reset_refusal(&clause),
            _ => None,
        })
}

/// The name of a parameter (`CONFIG_PARAMETER_REF`), in lower case as the server reads it
/// (a quoted name keeps its case).
fn parameter_name(node: &SyntaxNode) -> Option<String> {
    name_parts(node).map(|parts| parts.join("."))
}

/// `SET name = value` (or `TO`, `SET LOCAL`, `TO DEFAULT`, `FROM CURRENT`) in a statement or a
/// clause: the settings [`guards::setting_refusal`] refuses.
fn set_config_refusal(node: &SyntaxNode) -> Option<Refusal> {
    let name = parameter_name(&child(node, K::CONFIG_PARAMETER_REF)?)?;
    if has_child(node, K::FROM_CURRENT) {
        return guards::setting_refusal(&name, None, true);
    }
    let value = child(node, K::TO_CONFIG_VALUE);
    if value.as_ref().is_some_and(|v| has_token(v, K::DEFAULT_KW)) {
        return guards::setting_refusal(&name, None, true);
    }
    let read = value.and_then(|v| {
        let mut values = v.children();
        let one = values.next()?;
        if values.next().is_some() {
            return None;
        }
        match one.kind() {
            K::LITERAL => string_constant(&one).or_else(|| {
                let text = one.text().to_string();
                (!text.starts_with(['\'', '$', 'e', 'E', 'u', 'U', 'b', 'B', 'x', 'X', 'n', 'N'])
                    || text.eq_ignore_ascii_case("on")
                    || text.eq_ignore_ascii_case("off"))
                .then_some(text)
            }),
            _ => name_parts(&one).map(|p| p.join(".")),
        }
    });
    guards::setting_refusal(&name, read.as_deref(), false)
}

/// `RESET name` and `RESET ALL` (a statement, or a clause of `ALTER FUNCTION`/`ROLE`).
fn reset_refusal(node: &SyntaxNode) -> Option<Refusal> {
    match child(node, K::CONFIG_PARAMETER_REF) {
        Some(parameter) => guards::setting_refusal(&parameter_name(&parameter)?, None, true),
        // RESET ALL would reset the in-server rules' transaction state (`dsql_local.*`) in the
        // middle of a transaction, and the front door cannot know for certain that none is
        // open (a pipelined BEGIN). Not recorded: DSQL's wording for SET, naming ALL.
        None => Some(Refusal::unsupported(
            "setting configuration parameter \"ALL\" not supported",
        )),
    }
}

/// Any isolation level but repeatable read is refused, naming it in capitals
/// (`isolation.json`: SERIALIZABLE).
fn isolation_refusal(node: &SyntaxNode) -> Option<Refusal> {
    let modes = node
        .descendants()
        .find(|n| n.kind() == K::TRANSACTION_MODE_LIST)?;
    modes.children().find_map(|mode| {
        let level = match mode.kind() {
            K::SERIALIZABLE => "SERIALIZABLE",
            K::READ_COMMITTED => "READ COMMITTED",
            K::READ_UNCOMMITTED => "READ UNCOMMITTED",
            _ => return None,
        };
        Some(Refusal::unsupported(format!(
            "Unsupported isolation level: {level}"
        )))
    })
}

/// `SET TRANSACTION` (recorded) and `SET SESSION CHARACTERISTICS AS TRANSACTION` (not
/// recorded: the same rules, naming its parameter the same way): an isolation level other
/// than repeatable read is named, anything else refuses the parameter.
fn set_transaction(node: &SyntaxNode) -> Refusal {
    isolation_refusal(node).unwrap_or_else(|| {
        let parameter = if has_child(node, K::SESSION_CHARACTERISTICS) {
            "SESSION CHARACTERISTICS"
        } else {
            "TRANSACTION"
        };
        Refusal::unsupported(format!(
            "setting configuration parameter \"{parameter}\" not supported"
        ))
    })
}

/// Parameters DSQL's server (PostgreSQL 16) no longer has, which the PostgreSQL 15 backend
/// still shows: `lc_collate` is recorded (`environment.json`); `lc_ctype` went in the same
/// release and gets the same answer.
const UNKNOWN_PARAMETERS: &[&str] = &["lc_collate", "lc_ctype"];

/// `SHOW` of a parameter DSQL does not have.
fn show(node: &SyntaxNode) -> Option<Refusal> {
    let name = parameter_name(&child(node, K::CONFIG_PARAMETER_REF)?)?;
    UNKNOWN_PARAMETERS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(&name))
        .then(|| Refusal {
            code: UNDEFINED_OBJECT,
            message: format!("unrecognized configuration parameter \"{name}\""),
        })
}

/// What is refused wherever it appears in a statement, subqueries, CTEs, defaults, views and
/// function bodies included: locking clauses other than `FOR UPDATE`/`FOR KEY SHARE`
/// (`occ.json`), `TABLESAMPLE` (`queries.json`), and the calls [`guards::node_refusal`] judges.
fn tree_refusal(node: &SyntaxNode) -> Option<Refusal> {
    node.descendants().find_map(|n| match n.kind() {
        K::LOCKING_CLAUSE
            if n.descendants()
                .any(|s| matches!(s.kind(), K::FOR_SHARE | K::FOR_NO_KEY_UPDATE)) =>
        {
            Some(Refusal::unsupported(
                "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
            ))
        }
        K::TABLESAMPLE_CLAUSE => Some(Refusal::unsupported("TABLESAMPLE clause not supported")),
        _ => guards::node_refusal(&n, &first_refusal),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single statement of `sql`.
    fn one(sql: &str) -> Statement {
        match classify(sql) {
            Classified::Parsed(mut statements) if statements.len() == 1 => statements.remove(0),
            other => panic!("{sql}: expected one statement, got {other:?}"),
        }
    }

    /// The refusal of the single statement of `sql`, as (code, message).
    fn refusal(sql: &str) -> Option<(&'static str, String)> {
        one(sql).refusal.map(|r| (r.code, r.message))
    }

    #[test]
    fn unnamed_async_index_is_not_an_index_named_async() {
        // front-door-notes.md #19
        let s = one("CREATE INDEX ASYNC ON t (c)");
        assert_eq!(s.kind, Kind::Ddl);
        assert_eq!(s.refusal, None);
        assert_eq!(s.async_job, Some(AsyncJob::IndexBuild));
        assert_eq!(s.rewrite.as_deref(), Some("CREATE INDEX ON t (c)"));
    }

    #[test]
    fn quoted_async_is_an_index_name() {
        // front-door-notes.md #20: a synchronous index named "async", so refused as such.
        let s = one(r#"create index /* c */ "async" on t (c)"#);
        assert_eq!(s.rewrite, None);
        assert_eq!(s.async_job, None);
        assert_eq!(
            s.refusal.map(|r| r.message).as_deref(),
            Some("unsupported mode. please use CREATE INDEX ASYNC.")
        );
    }

    #[test]
    fn async_in_a_string_or_comment_is_untouched() {
        // front-door-notes.md #21
        let s = one("SELECT 'CREATE INDEX ASYNC x ON t (c)'");
        assert_eq!((s.kind, s.rewrite, s.refusal), (Kind::Query, None, None));
        let s = one("-- CREATE INDEX ASYNC x ON t (c)\nSELECT 1");
        assert_eq!((s.kind, s.rewrite, s.refusal), (Kind::Query, None, None));
    }

    #[test]
    fn async_forms_are_rewritten() {
        let cases = [
            ("CREATE INDEX ASYNC i ON t (c)", "CREATE INDEX i ON t (c)"),
            (
                "CREATE UNIQUE INDEX ASYNC IF NOT EXISTS i ON t (a, b)",
                "CREATE UNIQUE INDEX IF NOT EXISTS i ON t (a, b)",
            ),
            ("create index async i on t (c);", "create index i on t (c)"),
            (
                "CREATE INDEX /* x */ ASYNC\n  i ON t (c) WHERE c IS NOT NULL",
                "CREATE INDEX /* x */ i ON t (c) WHERE c IS NOT NULL",
            ),
            (
                "ALTER TABLE ASYNC t VALIDATE CONSTRAINT c",
                "ALTER TABLE t VALIDATE CONSTRAINT c",
            ),
        ];
        for (sql, plain) in cases {
            let s = one(sql);
            assert_eq!(s.rewrite.as_deref(), Some(plain), "{sql}");
            assert_eq!(s.refusal, None, "{sql}");
            assert_eq!(s.span, 0..sql.trim_end_matches(';').len(), "{sql}");
        }
        assert_eq!(
            one("ALTER TABLE ASYNC t VALIDATE CONSTRAINT c").async_job,
            Some(AsyncJob::ValidateConstraint)
        );
    }

    #[test]
    fn a_table_named_async_keeps_its_name() {
        let s = one("ALTER TABLE async ADD COLUMN c text");
        assert_eq!((s.rewrite, s.refusal), (None, None));
        let s = one("ALTER TABLE async.t DROP COLUMN c");
        assert_eq!((s.rewrite, s.refusal), (None, None));
    }

    #[test]
    fn multi_statement_strings_are_split_with_spans_in_the_original_text() {
        let sql = "BEGIN; CREATE INDEX ASYNC i ON t (c); COMMIT;  SELECT 1; TRUNCATE t";
        let Classified::Parsed(statements) = classify(sql) else {
            panic!("did not parse");
        };
        let kinds: Vec<Kind> = statements.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Transaction(TxnKind::Begin),
                Kind::Ddl,
                Kind::Transaction(TxnKind::Commit),
                Kind::Query,
                Kind::Dml
            ]
        );
        let texts: Vec<&str> = statements.iter().map(|s| &sql[s.span.clone()]).collect();
        assert_eq!(
            texts,
            [
                "BEGIN",
                "CREATE INDEX ASYNC i ON t (c)",
                "COMMIT",
                "SELECT 1",
                "TRUNCATE t"
            ]
        );
        assert_eq!(
            statements[1].rewrite.as_deref(),
            Some("CREATE INDEX i ON t (c)")
        );
        let refused: Vec<bool> = statements.iter().map(|s| s.refusal.is_some()).collect();
        assert_eq!(refused, [false, false, false, false, true]);
    }

    #[test]
    fn offsets_are_bytes_in_non_ascii_text() {
        let sql = "SELECT 'é—ü'; CREATE INDEX ASYNC ïdx ON \"täble\" (c); SELECT 'ø'";
        let Classified::Parsed(statements) = classify(sql) else {
            panic!("did not parse");
        };
        let texts: Vec<&str> = statements.iter().map(|s| &sql[s.span.clone()]).collect();
        assert_eq!(
            texts,
            [
                "SELECT 'é—ü'",
                "CREATE INDEX ASYNC ïdx ON \"täble\" (c)",
                "SELECT 'ø'"
            ]
        );
        assert_eq!(
            statements[1].rewrite.as_deref(),
            Some("CREATE INDEX ïdx ON \"täble\" (c)")
        );
    }

    #[test]
    fn unparsable_text_is_forwarded() {
        // A query or data change the server would run harmlessly if it could read it: as it
        // is, so the server's own syntax error comes back.
        for sql in ["SELECT 1 +", "SELECT a FROM t GROUP BY ALL", "DELETE FROM"] {
            assert_eq!(
                classify(sql),
                Classified::Unparsed { rewrite: None },
                "{sql}"
            );
        }
        // Anything else with the mark: the server answers the first real syntax error, or
        // the mark's.
        assert_eq!(
            classify("SELEC 1"),
            Classified::Unparsed {
                rewrite: Some(format!("SELEC 1{UNJUDGED_MARK}"))
            }
        );
        assert_eq!(
            classify("SELECT 'unterminated"),
            Classified::Unparsed { rewrite: None }
        );
        // A byte no token starts with: forwarded so that nothing runs whatever the server
        // makes of it.
        assert_eq!(
            classify("SELECT 1\u{1}"),
            Classified::Unparsed {
                rewrite: Some(format!("SELECT 1\u{1}{UNJUDGED_MARK}"))
            }
        );
        // Several statements, one of them unparsable: the server answers the first syntax
        // error, or the mark's, and runs none of them.
        for sql in ["SELEC 1; TRUNCATE t", "SELECT 1abc; TRUNCATE t"] {
            assert_eq!(
                classify(sql),
                Classified::Unparsed {
                    rewrite: Some(format!("{sql}{UNJUDGED_MARK}"))
                },
                "{sql}"
            );
        }
        // DSQL's syntax error for a qualified async index name is at the "."; so is
        // PostgreSQL's once ASYNC is gone.
        assert_eq!(
            classify("CREATE INDEX ASYNC public.i ON t (c)"),
            Classified::Unparsed {
                rewrite: Some(format!("CREATE INDEX public.i ON t (c){UNJUDGED_MARK}"))
            }
        );
        // The standard's SET NAMES, which the parser does not read, is judged on its tokens.
        assert_eq!(
            refusal("SET NAMES 'WIN1252'").map(|(code, _)| code),
            Some(FEATURE_NOT_SUPPORTED)
        );
        assert_eq!(refusal("SET NAMES 'UTF8'"), None);
    }

    #[test]
    fn empty_text_has_no_statements() {
        assert_eq!(classify(""), Classified::Parsed(vec![]));
        assert_eq!(classify(" ; -- nothing"), Classified::Parsed(vec![]));
    }

    /// Refusals and acceptances beyond the recordings (the recorded ones are checked by
    /// `tests/front_door_rules.rs`).
    /// The relations of the one statement `sql`, as `schema.name` or `name`, sorted, deduplicated.
    fn named(sql: &str) -> Option<Vec<String>> {
        match one(sql).relations {
            Relations::Named(relations) => {
                let mut names: Vec<String> = relations
                    .into_iter()
                    .map(|r| match r.schema {
                        Some(schema) => format!("{schema}.{}", r.name),
                        None => r.name,
                    })
                    .collect();
                names.sort();
                names.dedup();
                Some(names)
            }
            Relations::Unknown => None,
        }
    }

    #[test]
    fn a_statement_names_the_relations_it_uses_or_changes() {
        let cases: [(&str, &[&str]); 16] = [
            ("SELECT 1", &[]),
            ("DEALLOCATE ALL", &[]),
            ("SET search_path = myschema", &[]),
            ("SHOW server_version", &[]),
            ("BEGIN", &[]),
            (
                "SELECT * FROM t JOIN s.u ON true WHERE x IN (SELECT y FROM v)",
                &["s.u", "t", "v"],
            ),
            (
                "WITH w AS (SELECT 1) INSERT INTO t SELECT * FROM w",
                &["t", "w"],
            ),
            ("UPDATE t SET a = 1 FROM u", &["t", "u"]),
            ("DELETE FROM s.t", &["s.t"]),
            ("COPY t TO STDOUT", &["t"]),
            ("CREATE TABLE t (id uuid PRIMARY KEY)", &["t"]),
            ("CREATE INDEX ASYNC i ON s.t (c)", &["s.t"]),
            ("ALTER TABLE t ADD COLUMN c text", &["t"]),
            ("ALTER TABLE t RENAME TO u", &["t", "u"]),
            ("DROP TABLE IF EXISTS t, s.u", &["s.u", "t"]),
            ("GRANT SELECT ON t TO r", &["t"]),
        ];
        for (sql, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|&n| n.to_owned()).collect();
            assert_eq!(named(sql), Some(expected), "{sql}");
        }
        for sql in [
            "DROP INDEX i",
            "DROP SCHEMA s CASCADE",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "GRANT SELECT ON ALL TABLES IN SCHEMA s TO r",
            "ALTER TABLE t SET SCHEMA s",
        ] {
            assert_eq!(named(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_missing_cache_and_a_wrong_cache_get_dsqls_two_answers() {
        let wrong = |n: &str| {
            Some((
                INVALID_PARAMETER_VALUE,
                format!("CACHE ({n}) must be greater than or equal to 65536 or equal to 1"),
            ))
        };
        let missing = |message: &str| Some((FEATURE_NOT_SUPPORTED, message.to_owned()));
        for n in ["2", "1000", "65535", "0", "-5"] {
            assert_eq!(refusal(&format!("CREATE SEQUENCE s CACHE {n}")), wrong(n));
            assert_eq!(
                refusal(&format!(
                    "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE {n}))"
                )),
                wrong(n)
            );
            assert_eq!(
                refusal(&format!(
                    "ALTER TABLE t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (CACHE {n})"
                )),
                wrong(n)
            );
        }
        assert_eq!(
            refusal("CREATE SEQUENCE s START 5"),
            missing(SEQUENCE_CACHE)
        );
        assert_eq!(
            refusal("CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (START 5))"),
            missing(IDENTITY_CACHE)
        );
        assert_eq!(
            refusal("ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"),
            missing(IDENTITY_CACHE)
        );
        for n in ["1", "65536", "99999999999"] {
            assert_eq!(refusal(&format!("CREATE SEQUENCE s CACHE {n}")), None);
        }
    }

    #[test]
    fn refusals_beyond_the_recordings() {
        let refused = [
            (
                "RELEASE SAVEPOINT sp",
                "unsupported transaction statement: RELEASE",
            ),
            ("DO $$ BEGIN END $$", "unsupported statement: Do"),
            (
                "CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
                "PROCEDURE is not supported",
            ),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE 'plpgsql' AS $$ BEGIN RETURN 1; END $$",
                "CREATE FUNCTION with language plpgsql not supported",
            ),
            (
                "SELECT 1 AS x INTO t",
                "unsupported statement: CreateTableAs",
            ),
            (
                "CREATE TEMP TABLE x AS SELECT 1",
                "unsupported statement: CreateTableAs",
            ),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                "Unsupported isolation level: SERIALIZABLE",
            ),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                "setting configuration parameter \"SESSION CHARACTERISTICS\" not supported",
            ),
            (
                "START TRANSACTION ISOLATION LEVEL READ COMMITTED",
                "Unsupported isolation level: READ COMMITTED",
            ),
            (
                "SET client_min_messages = warning",
                "setting configuration parameter \"client_min_messages\" not supported",
            ),
            (
                "SET LOCAL statement_timeout = '3s'",
                "setting configuration parameter \"statement_timeout\" not supported",
            ),
            (
                "SELECT * FROM (SELECT id FROM t FOR SHARE) s",
                "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
            ),
            (
                "WITH x AS (SELECT id FROM t FOR NO KEY UPDATE) SELECT * FROM x",
                "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
            ),
            ("CREATE SEQUENCE s", SEQUENCE_CACHE),
            (
                "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY)",
                IDENTITY_CACHE,
            ),
            (
                "CREATE TABLE t (id integer GENERATED BY DEFAULT AS IDENTITY)",
                "datatype integer not supported, identity column type must be bigint",
            ),
            (
                "CREATE TABLE t (r int8range)",
                "datatype int8range not supported",
            ),
            (
                "CREATE TABLE t (b bit varying(3))",
                "datatype bit varying not supported",
            ),
            (
                "CREATE TABLE t (v varchar(5)[])",
                "datatype character varying[] not supported",
            ),
            (
                "CREATE INDEX CONCURRENTLY i ON t (c)",
                "CONCURRENTLY not supported for CREATE INDEX",
            ),
            (
                "CREATE INDEX ASYNC i ON t (c DESC)",
                "specifying sort order not supported for index keys",
            ),
            (
                "CREATE INDEX ASYNC i ON t (c text_pattern_ops)",
                "opclass not supported for index keys",
            ),
            (
                "ALTER TYPE mood RENAME VALUE 'a' TO 'b'",
                "ALTER TYPE not supported",
            ),
            ("CREATE TYPE shell", "CREATE TYPE not supported"),
            (
                "EXPLAIN SELECT * FROM t TABLESAMPLE BERNOULLI (5)",
                "TABLESAMPLE clause not supported",
            ),
        ];
        for (sql, message) in refused {
            assert_eq!(
                refusal(sql),
                Some((FEATURE_NOT_SUPPORTED, message.to_owned())),
                "{sql}"
            );
        }
        assert_eq!(
            refusal("CREATE TABLE t (id bigserial PRIMARY KEY)"),
            Some((UNDEFINED_OBJECT, "type \"bigserial\" does not exist".into()))
        );
        assert_eq!(
            refusal("SHOW LC_CTYPE"),
            Some((
                UNDEFINED_OBJECT,
                "unrecognized configuration parameter \"lc_ctype\"".into()
            ))
        );
    }

    #[test]
    fn accepted_beyond_the_recordings() {
        let accepted = [
            "SET search_path = app, public",
            "SET application_name = 'x'",
            "SET TimeZone = 'UTC'",
            "SET TIME ZONE 'UTC'",
            "SET DateStyle = 'ISO, MDY'",
            "SET client_encoding = 'UTF8'",
            "SET extra_float_digits = 3",
            "SET dsql.enable_batched_nestloop = on",
            "RESET search_path",
            "BEGIN READ ONLY",
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SELECT 1 FROM t FOR UPDATE SKIP LOCKED",
            "SELECT 'FOR SHARE', substring('abc' FOR 1)",
            "CREATE FUNCTION f() RETURNS int RETURN 1",
            "CREATE SEQUENCE s CACHE 99999999999",
            "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1), m public.money)",
            "CREATE TABLE t (a int NOT NULL DEFAULT 0 CHECK (a > 0), b uuid REFERENCES p (id))",
            "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1",
            "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
            "ALTER TABLE t RENAME COLUMN a TO b",
            "ALTER TABLE t DISABLE TRIGGER ALL",
            "DROP TRIGGER IF EXISTS trg ON t",
            "DROP DOMAIN d",
            "CREATE DOMAIN d AS text CHECK (VALUE <> '')",
            "CALL sys.wait_for_job('abc')",
            "ANALYZE t",
            "COPY t FROM STDIN",
        ];
        for sql in accepted {
            assert_eq!(refusal(sql), None, "{sql}");
        }
    }

    #[test]
    fn deep_text_is_judged_up_to_the_stated_limit_and_refused_beyond() {
        let sum = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
        for sql in [sum(60), sum(749)] {
            assert!(
                matches!(classify(&sql), Classified::Parsed(_)),
                "{}",
                sql.len()
            );
        }
        let hidden = format!("{}; TRUNCATE t", sum(700));
        let Classified::Parsed(statements) = classify(&hidden) else {
            panic!("judged");
        };
        assert!(statements[1].refusal.is_some());
        // Beyond the parser, a deep query passes on its tokens; anything else is refused.
        let Classified::Parsed(statements) = classify(&format!("{}; TRUNCATE t", sum(5_000)))
        else {
            panic!("judged statement by statement");
        };
        let refused: Vec<bool> = statements.iter().map(|s| s.refusal.is_some()).collect();
        assert_eq!(refused, [false, true]);
        for sql in [
            format!("UPDATE t SET a = {}", &sum(5_000)[7..]),
            format!("{}, lo_import('x')", sum(5_000)),
            format!("CREATE VIEW v AS {}", sum(5_000)),
        ] {
            let Classified::Unjudged(refusal) = classify(&sql) else {
                panic!("refused: {}", &sql[..30]);
            };
            assert_eq!(refusal.code, STATEMENT_TOO_COMPLEX);
        }
        let huge = format!("SELECT '{}'", "x".repeat(MAX_TEXT));
        assert!(
            matches!(classify(&huge), Classified::Unjudged(r) if r.code == PROGRAM_LIMIT_EXCEEDED)
        );
    }

    #[test]
    fn no_nesting_overflows_the_judges_stack() {
        // Each shape at every depth up to far beyond the parser's limit: the judge answers
        // (this test would abort on a stack overflow).
        let shapes: [(&str, &str, &str, &str); 10] = [
            ("SELECT ", "abs(", "1", ")"),
            ("SELECT ", "ARRAY[", "1", "]"),
            ("SELECT ", "ROW(", "1", ")"),
            ("SELECT ", "COALESCE(", "1", ", 2)"),
            ("SELECT ", "CASE WHEN true THEN ", "1", " END"),
            ("SELECT ", "NOT ", "true", ""),
            ("SELECT * FROM ", "(SELECT * FROM ", "t", ") s"),
            ("SELECT 1 WHERE ", "true AND (false OR ", "true", ")"),
            ("SELECT '{}'::jsonb", "", "", "->'a'"),
            ("SELECT ", "(SELECT ", "1", ")"),
        ];
        for (head, open, middle, close) in shapes {
            let parses = |depth: usize| {
                // A view, not a query: only the parser can judge it, however deep.
                let sql = format!(
                    "CREATE VIEW v AS {head}{}{middle}{}",
                    open.repeat(depth),
                    close.repeat(depth)
                );
                matches!(classify(&sql), Classified::Parsed(_))
            };
            // The deepest text the parser reads is the deepest tree the judge decodes, walks
            // and drops.
            let (mut deepest, mut beyond) = (1, 20_000);
            while deepest + 1 < beyond {
                let depth = usize::midpoint(deepest, beyond);
                if parses(depth) {
                    deepest = depth;
                } else {
                    beyond = depth;
                }
            }
            assert!((100..10_000).contains(&deepest), "{open}: {deepest}");
        }
    }

    #[test]
    fn server_files_programs_and_predefined_roles_are_refused() {
        let refused = [
            "COPY t FROM PROGRAM 'id'",
            "COPY t TO '/tmp/x'",
            "GRANT pg_read_server_files TO admin",
            "CREATE ROLE r SUPERUSER",
            "ALTER ROLE admin BYPASSRLS",
            "SELECT x FROM t WHERE v = pg_catalog.lo_import('/etc/passwd')",
            "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS 'SELECT pg_ls_dir(''.'')'",
            "SELECT set_config('dsql_local.rows', '0', true)",
            "ALTER FUNCTION f() SET dsql_local.internal = on",
            "RESET ALL",
        ];
        for sql in refused {
            assert_eq!(
                refusal(sql).map(|(code, _)| code),
                Some(FEATURE_NOT_SUPPORTED),
                "{sql}"
            );
        }
        for sql in [
            "COPY t FROM STDIN",
            "COPY (SELECT 1) TO STDOUT",
            "REVOKE pg_read_server_files FROM admin",
            "CREATE ROLE r WITH LOGIN",
            "SELECT set_config('search_path', 'public', false)",
            "SELECT \"PG_READ_FILE\"('x')",
        ] {
            assert_eq!(refusal(sql), None, "{sql}");
        }
    }

    #[test]
    fn kinds() {
        let cases = [
            ("INSERT INTO t VALUES (1)", Kind::Dml),
            ("COPY t TO STDOUT", Kind::Query),
            ("VALUES (1)", Kind::Query),
            ("GRANT SELECT ON t TO r", Kind::Ddl),
            ("SET search_path = x", Kind::Set),
            ("SHOW search_path", Kind::Utility),
            ("ROLLBACK TO sp", Kind::Transaction(TxnKind::RollbackTo)),
            ("END", Kind::Transaction(TxnKind::Commit)),
            ("ABORT", Kind::Transaction(TxnKind::Rollback)),
            ("COMMIT PREPARED 'x'", Kind::Transaction(TxnKind::TwoPhase)),
        ];
        for (sql, kind) in cases {
            assert_eq!(one(sql).kind, kind, "{sql}");
        }
    }

    #[test]
    fn unicode_escapes_are_decoded_or_refused() {
        // The default escape decodes: the watched function is found.
        assert_eq!(
            refusal(r#"SELECT U&"pg_read_fil\0065"('x')"#).map(|(_, m)| m),
            Some("function pg_read_file not supported".into())
        );
        // Another escape character is not decoded, so the text is refused.
        for sql in [
            r#"SELECT U&"pg_read_fil!0065" UESCAPE '!' ('x')"#,
            "SELECT set_config(U&'dsql!005flocal.rows' UESCAPE '!', '0', false)",
        ] {
            assert!(
                matches!(classify(sql), Classified::Unjudged(r) if r.code == FEATURE_NOT_SUPPORTED)
                    || refusal(sql).is_some(),
                "{sql}"
            );
        }
    }

    #[test]
    fn sql_texts_nested_in_sql_texts_are_judged_to_a_depth_and_refused_beyond() {
        let nested = |depth: usize, inner: &str| {
            let mut sql = inner.to_owned();
            for level in 0..depth {
                sql = format!("SELECT query_to_xml($q{level}${sql}$q{level}$, true, true, '')");
            }
            sql
        };
        assert_eq!(
            refusal(&nested(3, "TRUNCATE t")),
            Some((
                FEATURE_NOT_SUPPORTED,
                "unsupported statement: Truncate".into()
            ))
        );
        assert_eq!(refusal(&nested(3, "SELECT 1")), None);
        for depth in [MAX_EMBEDDED + 1, 10_000] {
            assert_eq!(
                refusal(&nested(depth, "SELECT 1")).map(|(code, _)| code),
                Some(STATEMENT_TOO_COMPLEX)
            );
        }
    }

    #[test]
    fn long_chains_up_to_the_limits_are_judged_and_beyond_them_too() {
        // Shapes whose trees grow deep or long while their tokens stay within the limits, at
        // the limits and beyond: each is answered (this test would abort on a stack overflow).
        let shapes: [(&str, &str, &str, usize); 11] = [
            ("SELECT 1", "+1", "", MAX_OPERATORS),
            ("SELECT true", " AND NOT true", "", MAX_OPERATORS),
            ("SELECT a", ".b", "", MAX_DOTTED),
            ("SELECT a", "[1]", "", 20_000),
            ("SELECT true", " OR true", "", 20_000),
            ("SELECT a", " COLLATE \"C\"", "", 20_000),
            ("SELECT a", " AT TIME ZONE 'UTC'", "", 20_000),
            ("SELECT a", "::int", "", MAX_OPERATORS / 2),
            ("SELECT 1 IN (1", ", 1", ")", MAX_TOKENS / 2 - 10),
            ("SELECT ", "(SELECT ", "1", MAX_NESTING),
            ("SELECT ", "CASE WHEN true THEN ", "1", MAX_OPERATORS),
        ];
        for (head, repeated, tail, n) in shapes {
            for n in [n, n + 1, 2 * n] {
                let close = if repeated.starts_with('(') {
                    ")".repeat(n)
                } else if repeated.starts_with("CASE") {
                    " END".repeat(n)
                } else {
                    String::new()
                };
                let sql = format!("CREATE VIEW v AS {head}{}{tail}{close}", repeated.repeat(n));
                assert!(
                    matches!(
                        classify(&sql),
                        Classified::Parsed(_) | Classified::Unjudged(_)
                    ),
                    "{repeated} × {n}"
                );
            }
        }
    }
}
