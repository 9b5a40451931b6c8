//! The page's style sheet, inlined in `<head>` (the page loads nothing).

/// Every rule the page uses.
pub(crate) const CSS: &str = r#"
:root { --fg:#1d1d1f; --muted:#5f6368; --line:#d9d9de; --bg:#ffffff; --soft:#f5f6f8;
  --ok:#0b7a3e; --okbg:#e6f4ea; --bad:#b3261e; --badbg:#fce8e6; --warnbg:#fff4d6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 10px; padding-top: 10px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 6px 0; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; }
.kicker { color: var(--muted); font-size: 13px; letter-spacing: .04em; text-transform: uppercase; margin: 0; }
.desc { color: var(--muted); margin: 2px 0 12px; }
.banner { border-radius: 8px; padding: 12px 16px; margin: 12px 0; font-size: 16px; }
.banner.bad { background: var(--badbg); border: 2px solid var(--bad); color: #601410; }
.banner.warn { background: var(--warnbg); border: 1px solid #e0b000; }
.chip { display:inline-block; padding: 1px 10px; border-radius: 12px; font-weight: 600; font-size: 13px; }
.chip.ok { background: var(--okbg); color: var(--ok); }
.chip.bad { background: var(--badbg); color: var(--bad); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 10px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.clock { font-size: 13px; color: var(--muted); }
.verdict { display: flex; gap: 22px; align-items: flex-start; border-radius: 10px; padding: 14px 18px; margin: 18px 0; }
.verdict.pass { background: var(--okbg); border: 2px solid var(--ok); }
.verdict.fail { background: var(--badbg); border: 2px solid var(--bad); }
.verdict .big { font-size: 40px; font-weight: 800; letter-spacing: .03em; min-width: 120px; }
.verdict.pass .big { color: var(--ok); }
.verdict.fail .big { color: var(--bad); }
.verdict ul { list-style: none; padding: 0; margin: 4px 0 0; }
.verdict li { margin: 3px 0; }
.mark { display:inline-block; width: 3.2em; font-weight: 700; }
.mark.ok { color: var(--ok); }
.mark.bad { color: var(--bad); }
.explain { background: var(--soft); border-left: 4px solid #0072B2; padding: 10px 16px; margin: 14px 0; }
.missing { color: #7a4b00; background: var(--warnbg); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
ul.missing-list { margin: 4px 0; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; }
.narrow { max-width: 640px; }
figure.plot { margin: 10px 0 18px; }
figure.plot svg { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.l, th.l { text-align: left; }
tr.failed td { background: #fff3f2; }
.scroll { overflow-x: auto; }
details { margin: 10px 0; }
pre { background: var(--soft); padding: 10px 12px; border-radius: 6px; overflow-x: auto; }
footer { margin-top: 40px; border-top: 2px solid var(--line); padding-top: 10px; color: var(--muted); font-size: 14px; }
"#;
