//! The judge's view of SQL text: PostgreSQL's tokens (`squawk-lexer`) and syntax tree
//! (`squawk-syntax`), and how names and string constants read in them.
//!
//! The tree keeps every token as written, so this module does what PostgreSQL's parser does
//! to names before the rules compare them: an unquoted identifier is folded to lower case, a
//! quoted one keeps its case, a `U&"…"` one is decoded; a string constant is read as the
//! server reads it with `standard_conforming_strings` on (the only value the front door
//! allows).

use std::ops::Range;

use squawk_lexer::{LiteralKind, TokenKind};
use squawk_syntax::{SyntaxKind, SyntaxNode, SyntaxToken};

/// One significant token (comments and whitespace left out) and its text.
pub(crate) struct Tok<'a> {
    /// What the lexer made of it.
    pub(crate) kind: TokenKind,
    /// Where it is in the text, in bytes.
    pub(crate) range: Range<usize>,
    /// Its text, as written (a quoted identifier or a string keeps its quotes).
    pub(crate) text: &'a str,
}

impl Tok<'_> {
    /// Whether the token is the unquoted word `word` (keywords are identifiers to the lexer).
    pub(crate) fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Ident && self.text.eq_ignore_ascii_case(word)
    }

    /// Whether the token is a string constant of any spelling (`'…'`, `E'…'`, `$$…$$`, …).
    pub(crate) fn is_string(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Literal {
                kind: LiteralKind::Str { .. }
                    | LiteralKind::EscStr { .. }
                    | LiteralKind::DollarQuotedString { .. }
                    | LiteralKind::UnicodeEscStr { .. }
                    | LiteralKind::NationalStr { .. }
            }
        )
    }
}

/// Whether a token kind is one the lexer could not finish (an unterminated string, quoted
/// identifier or comment) or could not read at all.
fn is_broken(kind: TokenKind) -> bool {
    use LiteralKind as L;
    match kind {
        TokenKind::Unknown => true,
        TokenKind::BlockComment { terminated } | TokenKind::QuotedIdent { terminated, .. } => {
            !terminated
        }
        TokenKind::Literal { kind } => matches!(
            kind,
            L::Str { terminated: false }
                | L::NationalStr { terminated: false }
                | L::ByteStr { terminated: false }
                | L::BitStr { terminated: false }
                | L::DollarQuotedString { terminated: false }
                | L::UnicodeEscStr { terminated: false }
                | L::EscStr { terminated: false }
        ),
        _ => false,
    }
}

/// The significant tokens of `sql`, comments left out, by PostgreSQL's lexical rules; `None`
/// if the text cannot be scanned (an unterminated literal or comment, a byte no token starts
/// with).
pub(crate) fn significant_tokens(sql: &str) -> Option<Vec<Tok<'_>>> {
    let mut tokens = Vec::new();
    let mut at = 0usize;
    for token in squawk_lexer::tokenize(sql) {
        let end = at + usize::try_from(token.len).ok()?;
        if is_broken(token.kind) {
            return None;
        }
        if !matches!(
            token.kind,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. }
        ) {
            tokens.push(Tok {
                kind: token.kind,
                text: sql.get(at..end)?,
                range: at..end,
            });
        }
        at = end;
    }
    Some(tokens)
}

/// Whether the text cannot be scanned only because its last token is unterminated (a string,
/// quoted identifier or comment running to the end): PostgreSQL's lexer fails on it too, and
/// none of the text can run.
pub(crate) fn ends_unterminated(sql: &str) -> bool {
    squawk_lexer::tokenize(sql)
        .find(|t| is_broken(t.kind))
        .is_some_and(|t| t.kind != TokenKind::Unknown)
}

/// Whether a `U&"…"` identifier or `U&'…'` string is followed by `UESCAPE`, which changes
/// its escape character: [`identifier`] and [`string_value`] decode only the default one.
pub(crate) fn has_custom_unicode_escape(tokens: &[Tok<'_>]) -> bool {
    tokens.windows(2).any(|pair| {
        matches!(
            pair[0].kind,
            TokenKind::QuotedIdent { uescape: true, .. }
                | TokenKind::Literal {
                    kind: LiteralKind::UnicodeEscStr { .. }
                }
        ) && pair[1].is_word("uescape")
    })
}

/// Whether a `U&"…"` identifier token is among `tokens` (its name is decoded only by the tree
/// walk, so a text with one is always walked).
pub(crate) fn has_unicode_identifier(tokens: &[Tok<'_>]) -> bool {
    tokens.iter().any(|t| {
        matches!(t.kind, TokenKind::QuotedIdent { uescape: true, .. })
            || (t.kind == TokenKind::Ident
                && t.text.starts_with(['u', 'U'])
                && t.text[1..].starts_with('&'))
    })
}

// ---------------------------------------------------------------------------------------------
// Names.

/// The name an identifier token stands for, as PostgreSQL's parser reads it: unquoted folded to
/// lower case, `"quoted"` without its quotes (`""` as `"`), `U&"…"` decoded with the default
/// escape `\`. `None` for a `U&` identifier that does not decode (a `UESCAPE` clause, a bad
/// escape): the caller must not guess.
pub(crate) fn identifier(text: &str) -> Option<String> {
    if let Some(rest) = text.strip_prefix("U&").or_else(|| text.strip_prefix("u&")) {
        let quoted = rest
            .strip_prefix('"')?
            .strip_suffix('"')?
            .replace("\"\"", "\"");
        return decode_unicode(&quoted);
    }
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => Some(quoted.replace("\"\"", "\"")),
        // PostgreSQL folds only ASCII letters (a multibyte letter keeps its case).
        None => Some(text.to_ascii_lowercase()),
    }
}

/// Decodes `\XXXX`, `\+XXXXXX` and `\\` in the body of a `U&` identifier or string.
fn decode_unicode(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.as_str();
        let (digits, skip) = if rest.starts_with('\\') {
            out.push('\\');
            chars.next();
            continue;
        } else if let Some(long) = rest.strip_prefix('+') {
            (long.get(..6)?, 7)
        } else {
            (rest.get(..4)?, 4)
        };
        out.push(char::from_u32(u32::from_str_radix(digits, 16).ok()?)?);
        for _ in 0..skip {
            chars.next();
        }
    }
    Some(out)
}

/// The value of a string constant token, as the server reads it; `None` for a form this
/// module does not decode (`U&'…'` with `UESCAPE`, a bit string, a bad escape).
pub(crate) fn string_value(text: &str) -> Option<String> {
    if let Some(body) = text.strip_prefix('$') {
        let tag_end = body.find('$')?;
        let tag = &text[..tag_end + 2];
        return text.strip_prefix(tag)?.strip_suffix(tag).map(str::to_owned);
    }
    let quoted = |t: &str| -> Option<String> {
        Some(t.strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'"))
    };
    let first = text.chars().next()?;
    match first {
        '\'' => quoted(text),
        'n' | 'N' => quoted(&text[1..]),
        'e' | 'E' => decode_escapes(&quoted(&text[1..])?),
        'u' | 'U' => decode_unicode(&quoted(text.get(2..)?)?),
        _ => None,
    }
}

/// Decodes the backslash escapes of an `E'…'` string body (already without its quotes).
fn decode_escapes(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            // Octal, hexadecimal and Unicode escapes: not decoded, so not judged as text.
            '0'..='7' | 'x' | 'u' | 'U' => return None,
            other => out.push(other),
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// The tree.

/// The first child node of `node` of kind `kind`.
pub(crate) fn child(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.children().find(|c| c.kind() == kind)
}

/// Whether `node` has a child node of kind `kind`.
pub(crate) fn has_child(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    child(node, kind).is_some()
}

/// Whether `node` has a direct token of kind `kind` (a keyword such as `CONCURRENTLY`).
pub(crate) fn has_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.children_with_tokens()
        .any(|c| c.as_token().is_some_and(|t| t.kind() == kind))
}

/// The name of a node kind (`CREATE_TABLE`), for the kinds the rules group by prefix.
pub(crate) fn kind_name(node: &SyntaxNode) -> String {
    format!("{:?}", node.kind())
}

/// The significant tokens under `node`, in order.
pub(crate) fn words(node: &SyntaxNode) -> impl Iterator<Item = SyntaxToken> + use<> {
    node.descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
}

/// The segments of a (possibly qualified) name under `node` (a `PATH`, `PATH_REF`, a
/// `NAME_REF` chain, a `FIELD_EXPR` …), each read as [`identifier`]; `None` if one does not
/// decode.
pub(crate) fn name_parts(node: &SyntaxNode) -> Option<Vec<String>> {
    words(node)
        .filter(|t| t.kind() != SyntaxKind::DOT)
        .map(|t| identifier(t.text()))
        .collect()
}

/// The value of the string constant `node` is (a `LITERAL` holding one string token), if it
/// is one this module decodes.
pub(crate) fn string_constant(node: &SyntaxNode) -> Option<String> {
    let literal = if node.kind() == SyntaxKind::LITERAL {
        node.clone()
    } else {
        let mut children = node.children();
        let only = children.next()?;
        if children.next().is_some() || only.kind() != SyntaxKind::LITERAL {
            return None;
        }
        only
    };
    let mut tokens = words(&literal);
    let token = tokens.next()?;
    if tokens.next().is_some() {
        return None;
    }
    string_value(token.text())
}
