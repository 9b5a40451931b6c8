//! Writing an import's bundle: into a hidden staging folder beside the
//! final one, then renamed into place once it is whole (records, derived
//! files, `SHA256SUMS`), so a failure leaves no half-written bundle.

use crate::bundle::load::ALIGNMENT_FILE;
use crate::bundle::manifest::ImportManifest;
use crate::bundle::{folder_name, Bundle};
use crate::scenario::Scenario;
use anyhow::{bail, Context, Result};
use measure::migration::record::RepRecord;
use measure::summary::{ClockAlignment, Summary};
use std::path::{Path, PathBuf};

/// What an import puts in its bundle.
pub struct ImportBundle<'a> {
    /// The folder the bundle goes in.
    pub out: &'a Path,
    /// The bundle's name (the scenario's name, the folder's first part).
    pub name: &'a str,
    /// `scenario.toml`'s description.
    pub description: &'a str,
    /// The folder's stamp, `compact_stamp` of the import's start.
    pub stamp: &'a str,
    /// `manifest.json`.
    pub manifest: &'a ImportManifest,
    /// `alignment.json`: what the records' times are on.
    pub alignment: &'a ClockAlignment,
    /// One record per repetition, in order.
    pub reps: &'a [RepRecord],
}

/// Writes the bundle and derives its summaries and report
/// ([`crate::report::regenerate`]) and `SHA256SUMS`; returns its folder
/// and summary. Refuses to replace a folder that is there.
pub fn write_bundle(b: &ImportBundle<'_>) -> Result<(PathBuf, Summary)> {
    let folder = folder_name(b.name, b.stamp, &b.manifest.run_id);
    let dir = b.out.join(&folder);
    let staging = b.out.join(format!(".{folder}.partial"));
    for d in [&dir, &staging] {
        if d.exists() {
            bail!("{} is already there: not replacing it", d.display());
        }
    }
    let scenario = scenario_toml(b)?;
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    match fill(&staging, b, &scenario) {
        Ok(summary) => {
            std::fs::rename(&staging, &dir).with_context(|| {
                format!("cannot rename {} to {}", staging.display(), dir.display())
            })?;
            Ok((dir, summary))
        }
        Err(e) => {
            // Ours alone: made above, under a name no one else uses.
            let _ = std::fs::remove_dir_all(&staging);
            Err(e.context(format!("writing the bundle {}", dir.display())))
        }
    }
}

/// Every file of the bundle, in `dir`.
fn fill(dir: &Path, b: &ImportBundle<'_>, scenario: &str) -> Result<Summary> {
    let bundle = Bundle::open(dir);
    bundle.write("scenario.toml", scenario.as_bytes())?;
    bundle.write_json("manifest.json", b.manifest)?;
    bundle.write_json(ALIGNMENT_FILE, b.alignment)?;
    for rep in b.reps {
        bundle.write_json(&format!("reps/rep-{:03}.json", rep.repetition), rep)?;
    }
    let (summary, _) = crate::report::regenerate(dir).context("analysing the imported records")?;
    crate::bundle::verify::write_checksums(dir).context("writing SHA256SUMS")?;
    Ok(summary)
}

/// `scenario.toml`: no scenario ran, so only the name, a description and
/// the count of repetitions, under a comment that says so; checked to
/// read back as a scenario.
fn scenario_toml(b: &ImportBundle<'_>) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Written<'a> {
        name: &'a str,
        description: &'a str,
        repetitions: usize,
    }
    let body = toml::to_string(&Written {
        name: b.name,
        description: b.description,
        repetitions: b.reps.len(),
    })
    .context("writing scenario.toml")?;
    let text = format!(
        "# Made by `harness import` from records a platform wrote: no scenario ran.\n\
         # Only the name, the description and the number of repetitions are the\n\
         # import's; every other setting is a default and describes nothing.\n{body}"
    );
    Scenario::parse(&text, "the import's scenario.toml")
        .map_err(anyhow::Error::new)
        .with_context(|| format!("the name {:?} makes no valid scenario", b.name))?;
    Ok(text)
}
