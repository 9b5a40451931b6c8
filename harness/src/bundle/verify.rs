//! `SHA256SUMS` for a result bundle: written by the run at its very end,
//! checked by `harness verify`.
//!
//! The file is in exactly the format of GNU `sha256sum` (`<64 hex>  <path>`,
//! one line per file, paths relative to the bundle with `/`, sorted
//! bytewise), so `cd BUNDLE && sha256sum -c SHA256SUMS` checks it too.
//! File names containing a backslash or a newline are escaped the way
//! `sha256sum` does it (the line starts with `\`, and the name has `\\` and
//! `\n`).
//!
//! Every regular file under the bundle is listed except `SHA256SUMS` itself
//! and files ending `.partial` (an atomic write in progress, see
//! [`crate::bundle::Bundle::write`]). Symbolic links and other non-regular
//! files are neither listed nor reported.
//!
//! A bundle passes [`verify_bundle`] only if every listed file is present
//! with the listed content **and** no other file is there: whoever re-checks
//! a bundle learns that it is exactly what the run wrote. Anything that
//! rewrites files of a bundle afterwards (e.g. regenerating `summary.*` or
//! a report) must call [`write_checksums`] again.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Name of the checksum file at the top of a bundle.
pub const CHECKSUM_FILE: &str = "SHA256SUMS";

/// Suffix of files being written atomically; never listed.
const PARTIAL_SUFFIX: &[u8] = b".partial";

/// Whether a bundle-relative path (bytes, `/`-separated) takes part in the
/// checksums.
fn is_listed_name(rel: &[u8]) -> bool {
    rel != CHECKSUM_FILE.as_bytes() && !rel.ends_with(PARTIAL_SUFFIX)
}

/// Every regular file under `dir`, as bundle-relative byte paths joined
/// with `/`, sorted bytewise.
fn regular_files(dir: &Path) -> Result<Vec<Vec<u8>>> {
    fn walk(root: &Path, sub: &Path, prefix: &[u8], out: &mut Vec<Vec<u8>>) -> Result<()> {
        let here = root.join(sub);
        let entries =
            std::fs::read_dir(&here).with_context(|| format!("cannot list {}", here.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", here.display()))?;
            let name = entry.file_name();
            let mut rel = prefix.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            // `file_type` does not follow symbolic links.
            let ft = entry
                .file_type()
                .with_context(|| format!("cannot stat {}", entry.path().display()))?;
            if ft.is_dir() {
                walk(root, &sub.join(&name), &rel, out)?;
            } else if ft.is_file() {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), b"", &mut out)?;
    out.sort();
    Ok(out)
}

/// The file system path of a bundle-relative byte path.
fn abs_path(dir: &Path, rel: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(rel))
}

/// SHA-256 of a file, lower-case hex, read in a stream.
fn sha256_hex(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// One `sha256sum` line (with its newline) for `rel`.
fn format_line(hex: &str, rel: &[u8]) -> Vec<u8> {
    let escape = rel.iter().any(|&c| c == b'\\' || c == b'\n');
    let mut line = Vec::with_capacity(rel.len() + 68);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(hex.as_bytes());
    line.extend_from_slice(b"  ");
    for &c in rel {
        match c {
            b'\\' if escape => line.extend_from_slice(b"\\\\"),
            b'\n' if escape => line.extend_from_slice(b"\\n"),
            _ => line.push(c),
        }
    }
    line.push(b'\n');
    line
}

/// Hashes every regular file of the bundle `dir` (except `SHA256SUMS` and
/// `*.partial`) and writes `dir/SHA256SUMS` in `sha256sum` format,
/// atomically (a temporary file renamed into place). Returns the number of
/// files listed.
pub fn write_checksums(dir: &Path) -> Result<usize> {
    let files = regular_files(dir)?;
    let mut text = Vec::new();
    let mut n = 0;
    for rel in files.iter().filter(|r| is_listed_name(r)) {
        let path = abs_path(dir, rel);
        let hex = sha256_hex(&path).with_context(|| format!("cannot hash {}", path.display()))?;
        text.extend_from_slice(&format_line(&hex, rel));
        n += 1;
    }
    let target = dir.join(CHECKSUM_FILE);
    let tmp = dir.join(format!("{CHECKSUM_FILE}.partial"));
    let write_tmp = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()
    };
    write_tmp().with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(n)
}

/// What [`verify_bundle`] found. Paths are relative to the bundle, with `/`
/// (bytes that are not UTF-8 are shown as U+FFFD).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// The bundle folder.
    pub dir: PathBuf,
    /// Files listed in `SHA256SUMS`.
    pub checked: usize,
    /// Listed files present with the listed content.
    pub ok: usize,
    /// Listed files whose content differs.
    pub modified: Vec<String>,
    /// Listed files that are not there (or no longer regular files).
    pub missing: Vec<String>,
    /// Regular files present but not listed (`SHA256SUMS` and `*.partial`
    /// excepted).
    pub extra: Vec<String>,
}

impl VerifyReport {
    /// The bundle is exactly what the run wrote: nothing modified, missing
    /// or added.
    pub fn passed(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bundle {}: {} files listed in {CHECKSUM_FILE}, {} match",
            self.dir.display(),
            self.checked,
            self.ok
        )?;
        for p in &self.modified {
            writeln!(f, "MODIFIED  {p}  (content differs from {CHECKSUM_FILE})")?;
        }
        for p in &self.missing {
            writeln!(f, "MISSING   {p}  (listed in {CHECKSUM_FILE}, not there)")?;
        }
        for p in &self.extra {
            writeln!(f, "EXTRA     {p}  (not listed in {CHECKSUM_FILE})")?;
        }
        if self.passed() {
            write!(
                f,
                "PASSED: every listed file matches and no other file is present"
            )
        } else {
            write!(
                f,
                "FAILED: {} modified, {} missing, {} extra",
                self.modified.len(),
                self.missing.len(),
                self.extra.len()
            )
        }
    }
}

/// Reads one `sha256sum` line: `<64 hex>  <name>` (or `<hex> *<name>`,
/// binary mode), with `sha256sum`'s escaping when the line starts with `\`.
fn parse_line(line: &[u8]) -> std::result::Result<(String, Vec<u8>), String> {
    let (escaped, rest) = match line.strip_prefix(b"\\") {
        Some(r) => (true, r),
        None => (false, line),
    };
    if rest.len() < 67 {
        return Err("too short for `<64 hex digits>  <file>`".into());
    }
    let (hex, tail) = rest.split_at(64);
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err("does not start with 64 hexadecimal digits".into());
    }
    if tail[0] != b' ' || (tail[1] != b' ' && tail[1] != b'*') {
        return Err("expected two spaces (or ` *`) after the digest".into());
    }
    let raw = &tail[2..];
    let name = if escaped {
        let mut out = Vec::with_capacity(raw.len());
        let mut it = raw.iter();
        while let Some(&c) = it.next() {
            if c != b'\\' {
                out.push(c);
                continue;
            }
            match it.next() {
                Some(b'\\') => out.push(b'\\'),
                Some(b'n') => out.push(b'\n'),
                _ => return Err("bad escape in file name (only \\\\ and \\n)".into()),
            }
        }
        out
    } else {
        raw.to_vec()
    };
    if name.is_empty() {
        return Err("empty file name".into());
    }
    if name.starts_with(b"/") {
        return Err("absolute path: names must be relative to the bundle".into());
    }
    if name
        .split(|&c| c == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err("file name with an empty, `.` or `..` component".into());
    }
    let hex = String::from_utf8_lossy(hex).to_ascii_lowercase();
    Ok((hex, name))
}

/// Checks the bundle `dir` against its `SHA256SUMS`: every listed file must
/// be there with the listed SHA-256, and no other regular file may be
/// (except `SHA256SUMS` and `*.partial`). Errors if `SHA256SUMS` is
/// missing, malformed (naming the line), or a listed file cannot be read.
pub fn verify_bundle(dir: &Path) -> Result<VerifyReport> {
    if !dir.is_dir() {
        bail!("{} is not a folder (give the bundle folder)", dir.display());
    }
    let sums_path = dir.join(CHECKSUM_FILE);
    let text = match std::fs::read(&sums_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no {CHECKSUM_FILE} in {}: the run did not finish writing it (crashed or killed?)",
            dir.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", sums_path.display()));
        }
    };
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let mut listed: BTreeMap<Vec<u8>, (String, usize)> = BTreeMap::new();
    if !body.is_empty() {
        for (i, line) in body.split(|&c| c == b'\n').enumerate() {
            let lineno = i + 1;
            let (hex, name) = parse_line(line).map_err(|why| {
                anyhow::anyhow!(
                    "{}:{lineno}: malformed line ({why}): {:?}",
                    sums_path.display(),
                    String::from_utf8_lossy(line)
                )
            })?;
            if let Some((_, first)) = listed.get(&name) {
                bail!(
                    "{}:{lineno}: {} is listed twice (first on line {first})",
                    sums_path.display(),
                    String::from_utf8_lossy(&name)
                );
            }
            listed.insert(name, (hex, lineno));
        }
    }
    let present: BTreeSet<Vec<u8>> = regular_files(dir)?.into_iter().collect();
    let mut report = VerifyReport {
        dir: dir.to_path_buf(),
        checked: listed.len(),
        ..VerifyReport::default()
    };
    for (rel, (want, _)) in &listed {
        let shown = String::from_utf8_lossy(rel).into_owned();
        if !present.contains(rel) {
            report.missing.push(shown);
            continue;
        }
        let path = abs_path(dir, rel);
        let got = sha256_hex(&path).with_context(|| format!("cannot hash {}", path.display()))?;
        if &got == want {
            report.ok += 1;
        } else {
            report.modified.push(shown);
        }
    }
    report.extra = present
        .iter()
        .filter(|r| is_listed_name(r) && !listed.contains_key(*r))
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn lines_round_trip_including_escapes() {
        for name in [&b"a/b.json"[..], b"we\\ird\nname", b"sp ace"] {
            let line = format_line(H, name);
            let (hex, back) = parse_line(&line[..line.len() - 1]).unwrap();
            assert_eq!(hex, H);
            assert_eq!(back, name);
        }
        assert_eq!(
            format_line(H, b"x\\y"),
            format!("\\{H}  x\\\\y\n").into_bytes()
        );
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(parse_line(b"abc  file").is_err());
        assert!(parse_line(format!("{H} file").as_bytes()).is_err());
        assert!(parse_line(format!("{H}  /etc/passwd").as_bytes()).is_err());
        assert!(parse_line(format!("{H}  a/../../x").as_bytes()).is_err());
        assert!(parse_line(format!("{H} *bin").as_bytes()).is_ok());
        let upper = H.to_ascii_uppercase();
        assert_eq!(parse_line(format!("{upper}  f").as_bytes()).unwrap().0, H);
    }

    #[test]
    fn partial_and_the_list_itself_are_not_listed() {
        assert!(!is_listed_name(b"SHA256SUMS"));
        assert!(!is_listed_name(b"reps/rep-001.partial"));
        assert!(is_listed_name(b"logs/SHA256SUMS"));
        assert!(is_listed_name(b"summary.json"));
    }
}
