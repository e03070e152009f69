//! Turning a script into scene texts: one scene per paragraph.

/// The longest title a scene gets, in characters (Unicode scalar values), ellipsis included.
pub const MAX_TITLE_CHARS: usize = 60;

/// The text of one scene, derived from one paragraph of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneText {
    /// A short title: the paragraph's heading or first sentence, at most [`MAX_TITLE_CHARS`] long.
    pub title: String,
    /// The paragraph's text with whitespace normalised (without its heading line, if any).
    pub description: String,
}

/// Splits `script` into scenes, one per paragraph. Paragraphs are separated by lines that are
/// empty or hold only whitespace; inside a paragraph every run of whitespace, line breaks
/// included, becomes one space. A script of only whitespace yields no scenes.
pub fn split_scenes(script: &str) -> Vec<SceneText> {
    paragraphs(script)
        .iter()
        .map(|lines| scene_from_paragraph(lines))
        .collect()
}

/// The script's paragraphs, each a non-empty list of non-empty, whitespace-normalised lines.
fn paragraphs(script: &str) -> Vec<Vec<String>> {
    let mut paragraphs = Vec::new();
    let mut current = Vec::new();
    for line in script.lines() {
        let line = normalise_whitespace(line);
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

fn scene_from_paragraph(lines: &[String]) -> SceneText {
    let first = lines.first().map_or("", String::as_str);
    match heading_text(first) {
        Some(heading) => {
            let rest = lines.get(1..).unwrap_or_default().join(" ");
            // A heading standing alone still needs something to describe the scene.
            let description = if rest.is_empty() {
                heading.to_owned()
            } else {
                rest
            };
            SceneText {
                title: make_title(heading),
                description,
            }
        }
        None => {
            let text = lines.join(" ");
            SceneText {
                title: make_title(first_sentence(&text)),
                description: text,
            }
        }
    }
}

/// Collapses every run of whitespace into one space and trims both ends.
pub fn normalise_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of a Markdown ATX heading (`# Title` up to `###### Title`), if `line` is one.
fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let text = line[hashes..].strip_prefix(' ')?.trim();
    (!text.is_empty()).then_some(text)
}

/// The first sentence of `text`: up to the first `.`, `!`, `?` or `…` (with any closing quotes or
/// brackets after it) that ends the text or is followed by whitespace. Requiring the whitespace
/// keeps numbers like `3.5` and file names like `a.txt` whole.
pub fn first_sentence(text: &str) -> &str {
    const TERMINATORS: [char; 4] = ['.', '!', '?', '…'];
    const CLOSERS: [char; 8] = ['"', '\'', ')', ']', '”', '’', '»', '*'];
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !TERMINATORS.contains(&c) {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, next)) = chars.peek() {
            if TERMINATORS.contains(&next) || CLOSERS.contains(&next) {
                end = j + next.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        match chars.peek() {
            None => return text,
            Some(&(_, next)) if next.is_whitespace() => return &text[..end],
            Some(_) => {}
        }
    }
    text
}

/// A title from a sentence or heading: trailing full stops dropped (they read oddly in a title,
/// unlike `!` and `?`), then shortened to [`MAX_TITLE_CHARS`].
fn make_title(source: &str) -> String {
    let trimmed = source.trim().trim_end_matches('.').trim_end();
    let title = if trimmed.is_empty() {
        source.trim()
    } else {
        trimmed
    };
    truncate_chars(title, MAX_TITLE_CHARS)
}

/// `text` cut to at most `max` characters, ending in `…` when it was cut. Cuts on character
/// boundaries, never inside a multi-byte character.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    let mut title = kept.trim_end().to_owned();
    title.push('…');
    title
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(script: &str) -> Vec<String> {
        split_scenes(script).into_iter().map(|s| s.title).collect()
    }

    #[test]
    fn blank_lines_split_the_script_into_scenes() {
        let scenes = split_scenes("One. Two.\n\nThree.\n   \t\nFour!\n\n\n\nFive?");
        let descriptions: Vec<_> = scenes.iter().map(|s| s.description.as_str()).collect();
        assert_eq!(descriptions, ["One. Two.", "Three.", "Four!", "Five?"]);
    }

    #[test]
    fn whitespace_inside_a_paragraph_is_normalised() {
        let scenes = split_scenes("  A  dark\tnight,\n   rain   falls. \r\n\r\n\r\n Then   dawn. ");
        assert_eq!(scenes.len(), 2);
        assert_eq!(scenes[0].description, "A dark night, rain falls.");
        assert_eq!(scenes[1].description, "Then dawn.");
    }

    #[test]
    fn a_blank_script_yields_no_scenes() {
        assert!(split_scenes("").is_empty());
        assert!(split_scenes(" \n\t\r\n \u{a0}\n").is_empty());
    }

    #[test]
    fn the_title_is_the_first_sentence_without_its_full_stop() {
        assert_eq!(
            titles("The sun rises over the hills. Birds sing.\n\nWho knocks? Nobody."),
            ["The sun rises over the hills", "Who knocks?"]
        );
    }

    #[test]
    fn decimals_and_file_names_do_not_end_a_sentence() {
        assert_eq!(
            first_sentence("It costs 3.5 million. Then more."),
            "It costs 3.5 million."
        );
        assert_eq!(first_sentence("Open a.txt now! Go."), "Open a.txt now!");
    }

    #[test]
    fn closing_quotes_stay_with_their_sentence() {
        assert_eq!(first_sentence("\"Run!\" she says. Later."), "\"Run!\"");
        assert_eq!(first_sentence("Wait... what?! Yes."), "Wait...");
    }

    #[test]
    fn a_paragraph_without_terminator_is_one_sentence() {
        assert_eq!(
            titles("Fade in on a quiet street"),
            ["Fade in on a quiet street"]
        );
    }

    #[test]
    fn a_heading_line_gives_the_title_and_is_left_out_of_the_description() {
        let scenes =
            split_scenes("# The Chase\nCars race. Sirens wail.\n\n## Finale\n\n#hashtag day.");
        assert_eq!(scenes.len(), 3);
        assert_eq!(scenes[0].title, "The Chase");
        assert_eq!(scenes[0].description, "Cars race. Sirens wail.");
        // A heading alone in its paragraph describes its own scene.
        assert_eq!(scenes[1].title, "Finale");
        assert_eq!(scenes[1].description, "Finale");
        // Without the space it is not a heading, just text.
        assert_eq!(scenes[2].title, "#hashtag day");
    }

    #[test]
    fn long_titles_are_cut_to_sixty_characters_with_an_ellipsis() {
        let sentence = "word ".repeat(30);
        let title = &titles(&sentence)[0];
        assert_eq!(title.chars().count(), 60);
        assert!(title.ends_with("word…"), "{title}");
        assert!(title.starts_with("word word"));

        let exactly = "x".repeat(60);
        assert_eq!(titles(&exactly)[0], exactly);
    }

    #[test]
    fn truncation_never_splits_a_multibyte_character() {
        let text = "é".repeat(100);
        let cut = truncate_chars(&text, MAX_TITLE_CHARS);
        assert_eq!(cut.chars().count(), 60);
        assert_eq!(cut, format!("{}…", "é".repeat(59)));
        let emoji = "🎬".repeat(61);
        assert_eq!(truncate_chars(&emoji, 60), format!("{}…", "🎬".repeat(59)));
    }

    #[test]
    fn a_title_of_only_dots_is_kept_rather_than_emptied() {
        assert_eq!(titles("..."), ["..."]);
    }
}
