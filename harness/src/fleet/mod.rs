//! `harness run` of a fleet: several VMs (`[[vm]]`), conditions
//! (`[[condition]]`), one after another or a node evacuated at once
//! (`mode`).
//!
//! The pipeline ([`run`]): plan the members, check they fit the
//! machine's memory ([`fit`]), build one lab for all of them, open the
//! fleet's bundle, run each member as the one-VM run it is
//! ([`crate::run::run_into`], into `vms/<id>/`: every measure keeps its
//! one definition), then derive the fleet's own files ([`derive`]). In
//! `sequential` mode a member has the nodes to itself; in `evacuate` mode
//! the members of a condition run together and each migration waits for
//! the others' ([`crate::run::lockstep`]).
//!
//! ```text
//! <name>-<stamp>-<id>/
//!   scenario.toml  fleet.json (what ran, when)  summary.json (the fleet's)
//!   summary.csv (every member's repetitions)  report.html  SHA256SUMS
//!   vms/<id>/      each member's own bundle
//! ```

pub mod derive;
pub mod fit;

use crate::backend::local::guest::{find_agent, find_kernel};
use crate::backend::local::lab::Lab;
use crate::backend::local::links::ShapedLinks;
use crate::backend::local::{wan_for, LocalLab};
use crate::backend::Backend;
use crate::bundle::Bundle;
use crate::clock::{compact_stamp, now_ns};
use crate::live::Live;
use crate::run::lockstep::Lockstep;
use crate::run::{run_into, Job, RunControl, RunOptions, RunOutcome};
use crate::scenario::{FleetMode, Member, Scenario};
use anyhow::{Context, Result};
use measure::fleet::{FleetRecord, MemberRecord, RECORD_SCHEMA};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The fleet's raw record, kept as the members run.
pub const RECORD_FILE: &str = "fleet.json";

/// `harness run`: the scenario of `opts` as a fleet when it is one
/// ([`Scenario::is_fleet`]), else as the one-VM run it is.
pub async fn run_any(opts: &RunOptions, ctl: &RunControl) -> Result<RunOutcome> {
    let (scenario, file) = crate::run::resolve_scenario(opts)?;
    if scenario.is_fleet() {
        if !matches!(opts.job, Job::Migrations) {
            anyhow::bail!(
                "{file}: a calibration runs on one VM; this scenario has several VMs or conditions"
            );
        }
        run(&scenario, &file, opts, ctl).await
    } else {
        crate::run::run(opts, ctl).await
    }
}

/// Runs the fleet `scenario` (one that [`Scenario::is_fleet`]) and writes
/// its bundle; the outcome's summary counts every member's repetitions.
pub async fn run(
    scenario: &Scenario,
    scenario_file: &str,
    opts: &RunOptions,
    ctl: &RunControl,
) -> Result<RunOutcome> {
    let live = Live::new();
    let members = scenario.members();
    fit::check(&members, scenario.mode, fit::available_mib()?)?;
    let kernel = find_kernel(&scenario.vm.kernel)?;
    let agent = find_agent(opts.agent.as_deref())?;
    let lab = Arc::new(
        Lab::create(scenario.vm.len(), wan_for(scenario))
            .context("building the lab (are you root? is iproute2 installed?)")?,
    );
    for line in lab.swept.sweep_lines() {
        live.println(&line);
    }
    ctl.set_run_id(&lab.id);
    let started_ns = now_ns();
    let bundle = Bundle::create(
        &opts.out_dir,
        &scenario.name,
        &compact_stamp(started_ns),
        &lab.id,
    )?;
    live.println(&format!(
        "bundle: {} ({} members, {})",
        bundle.dir.display(),
        members.len(),
        scenario.mode.as_str()
    ));
    bundle.write("scenario.toml", scenario.resolved_toml().as_bytes())?;
    let record = Mutex::new(FleetRecord {
        schema: RECORD_SCHEMA.into(),
        scenario: scenario.name.clone(),
        mode: scenario.mode.as_str().into(),
        started_ns,
        ended_ns: None,
        members: members.iter().map(planned).collect(),
    });
    let mut links = ShapedLinks::new(&lab);
    let fleet = Fleet {
        lab: &lab,
        links: &links,
        kernel: &kernel,
        agent: &agent,
        file: scenario_file,
        bundle: &bundle,
        record: &record,
        ctl,
    };
    match scenario.mode {
        FleetMode::Sequential => fleet.one_after_another(&members).await,
        FleetMode::Evacuate => fleet.all_at_once(&members).await,
    }
    let record = record.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut record = record;
    record.ended_ns = Some(now_ns());
    bundle.write_json(RECORD_FILE, &record)?;
    let outcome = derive::regenerate(&bundle.dir).context("analysing the fleet's bundle")?;
    // Every member has torn its VM down; the links and the lab go with
    // the last holder.
    links.stop();
    if let Ok(mut lab) = Arc::try_unwrap(lab) {
        lab.teardown().context("removing the lab")?;
    }
    crate::bundle::verify::write_checksums(&bundle.dir).context("writing SHA256SUMS")?;
    live.println(&format!(
        "fleet: {} members in {:.1} s",
        record.members.len(),
        (now_ns() - started_ns) as f64 / 1e9
    ));
    Ok(outcome)
}

fn planned(m: &Member) -> MemberRecord {
    MemberRecord {
        id: m.id.clone(),
        vm: m.vm.clone(),
        condition: m.condition.clone(),
        started_ns: None,
        ended_ns: None,
        error: None,
    }
}

/// What every member's run shares.
struct Fleet<'a> {
    lab: &'a Arc<Lab>,
    links: &'a ShapedLinks,
    kernel: &'a crate::backend::local::guest::KernelChoice,
    agent: &'a std::path::Path,
    file: &'a str,
    bundle: &'a Bundle,
    record: &'a Mutex<FleetRecord>,
    ctl: &'a RunControl,
}

impl Fleet<'_> {
    /// Each member alone, in order; a member that fails is recorded and
    /// the next one runs (unless the run was interrupted).
    async fn one_after_another(&self, members: &[Member]) {
        for m in members {
            if self.ctl.cancel.load(Ordering::SeqCst) {
                break;
            }
            self.member(m, None).await;
        }
    }

    /// The members of each condition together, every migration with the
    /// others'; the conditions one after another.
    async fn all_at_once(&self, members: &[Member]) {
        let mut conditions: Vec<&str> = members.iter().map(|m| m.condition.as_str()).collect();
        conditions.dedup();
        for c in conditions {
            if self.ctl.cancel.load(Ordering::SeqCst) {
                break;
            }
            let group: Vec<&Member> = members.iter().filter(|m| m.condition == c).collect();
            let step = Lockstep::new(group.len());
            let runs = group.iter().map(|m| self.member(m, Some(&step)));
            futures_util::future::join_all(runs).await;
        }
    }

    /// One member's run into `vms/<id>/`, its times and error recorded.
    async fn member(&self, m: &Member, step: Option<&Lockstep>) {
        let live = Live::with_prefix(&format!("[{}] ", m.id));
        let started = now_ns();
        self.note(&m.id, |r| r.started_ns = Some(started));
        let result = self.member_run(m, step, &live).await;
        let ended = now_ns();
        let error = result.err().map(|e| format!("{e:#}"));
        live.println(&format!(
            "{} in {:.1} s{}",
            if error.is_none() { "done" } else { "ended" },
            (ended - started) as f64 / 1e9,
            error.as_deref().map_or(String::new(), |e| format!(": {e}"))
        ));
        self.note(&m.id, |r| {
            r.ended_ns = Some(ended);
            r.error = error;
        });
        // Written as it goes, so a killed fleet still says what ran.
        let record = self.record.lock().map(|r| r.clone());
        if let Ok(r) = record {
            let _ = self.bundle.write_json(RECORD_FILE, &r);
        }
    }

    async fn member_run(&self, m: &Member, step: Option<&Lockstep>, live: &Live) -> Result<()> {
        let mut backend = LocalLab::on_shared_lab(
            Arc::clone(self.lab),
            self.links.clone(),
            m.index,
            &m.id,
            &m.scenario,
            self.kernel.clone(),
            self.agent.to_path_buf(),
        )?;
        let dir = self.bundle.dir.join("vms").join(&m.id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let out = run_into(
            &mut backend,
            &m.scenario,
            self.file,
            &Job::Migrations,
            Bundle::open(&dir),
            self.ctl,
            live,
            step,
        )
        .await;
        // `run_into` tears the VM down; this only catches a path that did not.
        let _ = backend.teardown().await;
        let out = out?;
        match out.summary.run_status.as_str() {
            "complete" => Ok(()),
            other => anyhow::bail!(
                "{other}{}",
                out.summary
                    .error
                    .map_or(String::new(), |e| format!(": {e}"))
            ),
        }
    }

    fn note(&self, id: &str, f: impl FnOnce(&mut MemberRecord)) {
        if let Ok(mut r) = self.record.lock() {
            if let Some(m) = r.members.iter_mut().find(|m| m.id == id) {
                f(m);
            }
        }
    }
}
