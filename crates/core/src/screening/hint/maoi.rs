use super::{Context, Fired, fired_if};
use crate::screening::trial::Trial;

/// An MAOI running at `as_of` at a dose that needs the tyramine diet: any dose of an MAOI without a
/// diet-free limit; above the limit (or at an unknown dose) for transdermal selegiline.
pub fn diet<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let mut details = Vec::new();
    let mut evidence = Vec::new();
    for t in ctx.trials.iter().filter(|t| t.is_ongoing()) {
        let info = ctx.k.drug(t.drug);
        if !info.maoi {
            continue;
        }
        let restricted = match (info.maoi_diet_free_max_daily_mg, t.daily_mg) {
            (None, _) => true,
            (Some(limit), Some(mg)) => mg > limit,
            (Some(_), None) => {
                details.push(format!(
                    "The {} dose is unknown; the diet applies above the diet-free dose.",
                    info.name
                ));
                true
            }
        };
        if restricted {
            evidence.extend(t.evidence.iter().cloned());
        }
    }
    fired_if(evidence, details.join(" "))
}

/// An MAOI started before the washout after a serotonergic antidepressant ended, a serotonergic
/// antidepressant started within the reverse washout after an MAOI ended, or the two overlapping;
/// reported while the later start is recent.
pub fn washout<'a>(ctx: &Context<'a>) -> Option<Fired<'a>> {
    let h = &ctx.k.policy.hints;
    let recent = |day| ctx.within(day, h.maoi_washout_lookback_days);
    let mut details = Vec::new();
    let mut evidence = Vec::new();
    let maois = ctx.trials.iter().filter(|t| ctx.k.drug(t.drug).maoi);
    for m in maois {
        for s in ctx.trials.iter().filter(|s| s.drug != m.drug) {
            let Some(washout) = ctx.k.drug(s.drug).maoi_washout_days else {
                continue;
            };
            let conflict = conflict(
                m,
                s,
                washout as i32,
                h.maoi_reverse_washout_days as i32,
                ctx.as_of,
            );
            if let Some(text) = conflict
                && recent(m.start.max(s.start))
            {
                details.push(
                    text.replace("{m}", &ctx.k.drug(m.drug).name)
                        .replace("{s}", &ctx.k.drug(s.drug).name),
                );
                evidence.extend(m.evidence.iter().chain(&s.evidence).cloned());
            }
        }
    }
    fired_if(evidence, details.join(" "))
}

fn conflict(
    m: &Trial,
    s: &Trial,
    washout: i32,
    reverse: i32,
    as_of: crate::date::Date,
) -> Option<&'static str> {
    if let Some(s_end) = s.end
        && s_end <= m.start
    {
        return (s_end.days_until(m.start) < washout)
            .then_some("{m} was started before the washout after {s} had passed.");
    }
    if let Some(m_end) = m.end
        && m_end <= s.start
    {
        return (m_end.days_until(s.start) < reverse)
            .then_some("{s} was started within the washout after {m} was stopped.");
    }
    let overlap = s.start < m.end_or(as_of) && m.start < s.end_or(as_of);
    overlap.then_some("{m} and {s} were taken at the same time.")
}
