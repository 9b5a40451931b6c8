//! How a plot sits on the page: a figure with its title and caption, or
//! the reason it is not there.

use crate::report::html::text::esc;
use std::fmt::Write as _;

/// A figure with an id, a title, the plot (or why there is none) and a
/// caption.
pub(super) fn figure(
    h: &mut String,
    id: &str,
    title: &str,
    plot: Result<String, String>,
    caption: &str,
) {
    let _ = write!(
        h,
        "<figure class=\"plot\" id=\"{}\"><h3>{}</h3>",
        esc(id),
        esc(title)
    );
    match plot {
        Ok(svg) => {
            h.push_str(&svg);
            if !caption.is_empty() {
                let _ = write!(h, "<figcaption>{caption}</figcaption>");
            }
        }
        // Without the plot its caption would describe nothing.
        Err(why) => {
            let _ = write!(h, "<p class=\"missing\">{}</p>", esc(&why));
        }
    }
    h.push_str("</figure>\n");
}

/// A drawn plot, or why it could not be drawn.
pub(super) fn drawn(r: anyhow::Result<String>) -> Result<String, String> {
    r.map_err(|e| format!("plot not drawn: {e:#}"))
}
