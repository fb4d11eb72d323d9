//! IPA phonemes from espeak-ng, the phonemizer Piper voices were trained with.
//!
//! We call the system library (Debian `libespeak-ng-dev`) through four
//! hand-written declarations rather than a generated binding: the surface we
//! use is tiny and stable since espeak-ng 1.49, and bindgen would add libclang
//! to every build of the `piper` feature.
//!
//! espeak-ng keeps global state (the selected voice, its translator buffers,
//! the static string `espeak_TextToPhonemes` returns), so every call goes
//! through one process-wide mutex and the library is initialized once.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Mutex, OnceLock};

use crate::VoiceError;

/// `espeak_AUDIO_OUTPUT::AUDIO_OUTPUT_SYNCHRONOUS`: no audio device, no thread.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeakINITIALIZE_DONT_EXIT`: without it a missing `espeak-ng-data`
/// makes the library call `exit()` on our whole server.
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
/// `espeakCHARS_UTF8`.
const CHARS_UTF8: c_int = 1;
/// Phoneme mode bit 1: IPA as UTF-8 rather than espeak's ASCII names.
const PHONEMES_IPA: c_int = 0x02;
/// `espeak_ERROR::EE_OK`.
const EE_OK: c_int = 0;

#[link(name = "espeak-ng")]
extern "C" {
    /// Returns the sample rate, or -1 on failure.
    fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    /// Returns an `espeak_ERROR`.
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    /// Phonemizes one clause of `*textptr`, advances `*textptr` past it (or
    /// sets it to null at the end) and returns a pointer into a static buffer.
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}

/// What the mutex guards: the voice espeak-ng has selected.
struct Espeak {
    voice: Option<String>,
}

/// The initialized library, or why it could not be initialized (kept, since
/// a missing data directory will not appear while the process runs).
static ESPEAK: OnceLock<Result<Mutex<Espeak>, String>> = OnceLock::new();

fn espeak() -> Result<&'static Mutex<Espeak>, VoiceError> {
    ESPEAK
        .get_or_init(|| {
            // SAFETY: a null path selects the default data directory, and the
            // OnceLock runs this once, before any other espeak-ng call.
            let rate = unsafe {
                espeak_Initialize(
                    AUDIO_OUTPUT_SYNCHRONOUS,
                    0,
                    std::ptr::null(),
                    INITIALIZE_DONT_EXIT,
                )
            };
            if rate <= 0 {
                return Err(
                    "espeak_Initialize failed; is the espeak-ng-data package installed?".to_owned(),
                );
            }
            tracing::debug!(rate, "espeak-ng initialized");
            Ok(Mutex::new(Espeak { voice: None }))
        })
        .as_ref()
        .map_err(|detail| VoiceError::Load {
            what: "espeak-ng",
            detail: detail.clone(),
        })
}

/// Checks that espeak-ng starts and knows `voice`, so a bad setup fails at
/// load time rather than on the first sentence.
pub(crate) fn check_voice(voice: &str) -> Result<(), VoiceError> {
    phonemize(voice, "").map(drop)
}

/// Phonemizes `text` with the espeak-ng voice `voice` (e.g. `en-us`): one
/// IPA string per clause espeak-ng finds, words separated by spaces, with
/// stress marks and without punctuation. Text that says nothing gives nothing.
pub(crate) fn phonemize(voice: &str, text: &str) -> Result<Vec<String>, VoiceError> {
    let lock = espeak()?;
    // A panic while the lock was held cannot have left espeak-ng half-called
    // (no Rust code runs inside it), so the poisoned state is still good.
    let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if state.voice.as_deref() != Some(voice) {
        let name =
            CString::new(voice).map_err(|_| voice_error(voice, "the name contains a NUL byte"))?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call;
        // the mutex serializes this with every other espeak-ng call.
        let status = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
        if status != EE_OK {
            state.voice = None;
            return Err(voice_error(
                voice,
                &format!("espeak_SetVoiceByName returned {status}"),
            ));
        }
        state.voice = Some(voice.to_owned());
    }
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }

    // Text from a client may hold NUL bytes; they would end the C string early.
    let text = CString::new(text.replace('\0', " ")).map_err(|e| VoiceError::Inference {
        engine: "espeak-ng",
        detail: e.to_string(),
    })?;
    let end = text.as_bytes().len();
    let mut cursor: *const c_void = text.as_ptr().cast();
    let mut clauses = Vec::new();
    // Each call consumes at least one byte, so this bound is never reached by
    // a working library; it turns a misbehaving one into an error, not a hang.
    for _ in 0..=end + 1 {
        if cursor.is_null() {
            return Ok(clauses);
        }
        // SAFETY: `cursor` is null (handled above) or points into `text`, a
        // NUL-terminated buffer alive for the whole loop; espeak-ng only reads
        // it and moves `cursor` forward or to null. The mutex is held.
        let phonemes = unsafe { espeak_TextToPhonemes(&mut cursor, CHARS_UTF8, PHONEMES_IPA) };
        if !phonemes.is_null() {
            // SAFETY: espeak-ng returns a NUL-terminated string in its own
            // static buffer, valid until the next call, which the mutex keeps
            // from happening before we copy it out here.
            let ipa = unsafe { CStr::from_ptr(phonemes) }.to_string_lossy();
            let ipa = strip_language_switches(ipa.trim());
            if !ipa.is_empty() {
                clauses.push(ipa);
            }
        }
    }
    Err(VoiceError::Inference {
        engine: "espeak-ng",
        detail: "espeak_TextToPhonemes did not reach the end of the text".to_owned(),
    })
}

fn voice_error(voice: &str, detail: &str) -> VoiceError {
    VoiceError::Load {
        what: "espeak-ng voice",
        detail: format!("{voice}: {detail}"),
    }
}

/// Removes the `(fr)`/`(en)` markers espeak-ng puts around words it reads in
/// another language: they are not phonemes, and `(` `)` have ids in Piper's
/// map that the voice never saw in that role.
fn strip_language_switches(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut depth = 0usize;
    for c in ipa.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_word_gives_the_same_ipa_as_the_espeak_ng_command() {
        // `espeak-ng -v en-us --ipa -q hello` prints "həlˈoʊ".
        assert_eq!(phonemize("en-us", "hello").unwrap(), vec!["həlˈoʊ"]);
    }

    #[test]
    fn words_are_separated_by_spaces_and_punctuation_is_dropped() {
        let clauses = phonemize("en-us", "Hello world, how are you?").unwrap();
        let joined = clauses.join(" ");
        assert!(joined.contains("həlˈoʊ wˈɜːld"), "{joined}");
        assert!(!joined.contains([',', '?']), "{joined}");
    }

    #[test]
    fn a_sentence_and_digits_match_the_espeak_ng_command() {
        // Both strings as printed by `espeak-ng -v en-us --ipa -q` 1.51.
        assert_eq!(
            phonemize("en-us", "The quick brown fox jumps over the lazy dog").unwrap(),
            vec!["ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ"]
        );
        assert_eq!(phonemize("en-us", "42").unwrap(), vec!["fˈoːɹɾi tˈuː"]);
    }

    #[test]
    fn empty_text_nul_bytes_and_symbols_do_not_fail() {
        assert!(phonemize("en-us", "").unwrap().is_empty());
        assert!(phonemize("en-us", "???").unwrap().is_empty());
        assert!(!phonemize("en-us", "a\0b").unwrap().is_empty());
        phonemize("en-us", "😀 🎉 ✓ 中文").unwrap();
    }

    #[test]
    fn an_unknown_voice_is_a_load_error() {
        let err = check_voice("no-such-voice").unwrap_err();
        assert!(matches!(err, VoiceError::Load { .. }), "{err}");
        // ... and the next call with a good voice still works.
        assert_eq!(phonemize("en-us", "hello").unwrap(), vec!["həlˈoʊ"]);
    }

    #[test]
    fn language_switch_markers_are_removed() {
        assert_eq!(strip_language_switches("(fr)kafe(en) ɪz"), "kafe ɪz");
        assert_eq!(strip_language_switches("ab)c"), "abc");
    }
}
