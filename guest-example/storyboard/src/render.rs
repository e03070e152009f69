//! Rendering the storyboard document, byte for byte deterministic.

use crate::config::Format;
use crate::script::normalise_whitespace;

/// One scene as it is written to the database and the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    /// Its position in the project, from 0.
    pub index: u32,
    /// Its short title.
    pub title: String,
    /// What happens in it.
    pub description: String,
    /// How long it lasts, in milliseconds.
    pub duration_ms: u32,
}

/// The sum of the scenes' durations, in milliseconds.
pub fn total_duration_ms(scenes: &[Scene]) -> u64 {
    scenes.iter().map(|s| u64::from(s.duration_ms)).sum()
}

/// `ms` as seconds with one decimal, rounded half up: `4250` gives `4.3`. Integer arithmetic
/// keeps the text independent of float formatting.
pub fn seconds_text(ms: u64) -> String {
    let tenths = ms.saturating_add(50) / 100;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Renders the storyboard of `project_name` in `format`.
pub fn render(format: Format, project_name: &str, scenes: &[Scene]) -> String {
    match format {
        Format::Markdown => markdown(project_name, scenes),
        Format::Json => json(project_name, scenes),
    }
}

/// The Markdown storyboard: a title, then per scene a heading, its duration and its description.
pub fn markdown(project_name: &str, scenes: &[Scene]) -> String {
    // A line break in the name would end the heading early.
    let name = normalise_whitespace(project_name);
    let mut out = if name.is_empty() {
        String::from("# Storyboard\n")
    } else {
        format!("# Storyboard: {name}\n")
    };
    for scene in scenes {
        let number = u64::from(scene.index) + 1;
        out.push_str(&format!(
            "\n## Scene {number} — {}\n\n*Duration: {} s*\n",
            scene.title,
            seconds_text(u64::from(scene.duration_ms))
        ));
        if !scene.description.is_empty() {
            out.push_str(&format!("\n{}\n", scene.description));
        }
    }
    out
}

/// The JSON storyboard:
/// `{"project", "scenes": [{"index", "title", "description", "duration_ms"}], "total_duration_ms"}`,
/// indented by two spaces and ending in a newline.
pub fn json(project_name: &str, scenes: &[Scene]) -> String {
    let mut out = String::from("{\n  \"project\": ");
    push_json_string(&mut out, project_name);
    out.push_str(",\n  \"scenes\": [");
    for (i, scene) in scenes.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        out.push_str(&format!("    {{\n      \"index\": {},\n", scene.index));
        out.push_str("      \"title\": ");
        push_json_string(&mut out, &scene.title);
        out.push_str(",\n      \"description\": ");
        push_json_string(&mut out, &scene.description);
        out.push_str(&format!(
            ",\n      \"duration_ms\": {}\n    }}",
            scene.duration_ms
        ));
    }
    if !scenes.is_empty() {
        out.push_str("\n  ");
    }
    out.push_str(&format!(
        "],\n  \"total_duration_ms\": {}\n}}\n",
        total_duration_ms(scenes)
    ));
    out
}

/// Appends `text` as a JSON string literal. Control characters must be escaped by the JSON
/// grammar; U+2028 and U+2029 are escaped too so the document is also safe to embed in JavaScript.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(index: u32, title: &str, description: &str, duration_ms: u32) -> Scene {
        Scene {
            index,
            title: title.to_owned(),
            description: description.to_owned(),
            duration_ms,
        }
    }

    fn sample() -> Vec<Scene> {
        vec![
            scene(0, "Dawn", "The sun rises.", 4_000),
            scene(1, "Chase", "Cars race.", 2_500),
        ]
    }

    #[test]
    fn seconds_are_shown_with_one_decimal_rounded_half_up() {
        assert_eq!(seconds_text(0), "0.0");
        assert_eq!(seconds_text(4_000), "4.0");
        assert_eq!(seconds_text(2_500), "2.5");
        assert_eq!(seconds_text(4_249), "4.2");
        assert_eq!(seconds_text(4_250), "4.3");
        assert_eq!(seconds_text(1), "0.0");
        assert_eq!(seconds_text(600_000_000), "600000.0");
    }

    #[test]
    fn markdown_has_a_title_and_a_numbered_section_per_scene() {
        let doc = markdown("My  Film\nCut", &sample());
        assert_eq!(
            doc,
            "# Storyboard: My Film Cut\n\
             \n## Scene 1 — Dawn\n\n*Duration: 4.0 s*\n\nThe sun rises.\n\
             \n## Scene 2 — Chase\n\n*Duration: 2.5 s*\n\nCars race.\n"
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let doc = json("My Film", &sample());
        let value: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "project": "My Film",
                "scenes": [
                    {"index": 0, "title": "Dawn", "description": "The sun rises.", "duration_ms": 4000},
                    {"index": 1, "title": "Chase", "description": "Cars race.", "duration_ms": 2500},
                ],
                "total_duration_ms": 6500,
            })
        );
        assert!(doc.ends_with("}\n"));
    }

    #[test]
    fn json_with_no_scenes_is_still_valid() {
        let doc = json("Empty", &[]);
        let value: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        assert_eq!(value["scenes"], serde_json::json!([]));
        assert_eq!(value["total_duration_ms"], 0);
    }

    #[test]
    fn json_strings_survive_quotes_backslashes_and_control_characters() {
        let nasty: String = (0u32..0x20)
            .filter_map(char::from_u32)
            .chain("\"\\/ é 🎬 \u{7f} \u{2028}\u{2029} </script>".chars())
            .collect();
        let doc = json(&nasty, &[scene(0, &nasty, &nasty, 1)]);
        let value: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        assert_eq!(value["project"], nasty.as_str());
        assert_eq!(value["scenes"][0]["title"], nasty.as_str());
        assert_eq!(value["scenes"][0]["description"], nasty.as_str());
        assert!(!doc.contains('\u{2028}'));
    }

    #[test]
    fn json_escapes_match_the_short_forms() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\te\u{1}f\u{8}\u{c}\r");
        assert_eq!(out, r#""a\"b\\c\nd\te\u0001f\b\f\r""#);
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(
            render(Format::Json, "p", &sample()),
            render(Format::Json, "p", &sample())
        );
        assert_eq!(
            render(Format::Markdown, "p", &sample()),
            markdown("p", &sample())
        );
    }
}
