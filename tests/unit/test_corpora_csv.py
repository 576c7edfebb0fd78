"""Generic CSV corpus loader."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.corpora import prepare_corpus
from ser_pipeline.corpora.csv_corpus import prepare_csv_corpus
from ser_pipeline.errors import ConfigError, CorpusError

SR = 16000


@pytest.fixture
def corpus(tmp_path):
    for name, seconds in (("a", 0.5), ("b", 1.0), ("c", 2.0)):
        (tmp_path / "wav").mkdir(exist_ok=True)
        sf.write(str(tmp_path / "wav" / f"{name}.wav"), np.zeros(int(seconds * SR), np.float32), SR)
    return tmp_path


def _csv(path, text):
    path.write_text(text)
    return path


def test_happy_path(corpus):
    csv = _csv(corpus / "list.csv",
               "path,speaker,label,gender,text,start,end\n"
               "wav/a.wav,spk1,neu,female,hello,,\n"
               "wav/b.wav,spk2,ang,M,,,\n"
               f"{corpus}/wav/c.wav,spk2,sad,,,0.5,1.5\n")
    df = prepare_csv_corpus(csv).set_index("utt_id")
    assert list(df.index) == ["a", "b", "c"]
    assert df.loc["a", "audio_path"] == str((corpus / "wav" / "a.wav").resolve())
    assert df.loc["a", "duration"] == pytest.approx(0.5)
    assert math.isnan(df.loc["a", "start"])
    assert (df.loc["c", "start"], df.loc["c", "end"], df.loc["c", "duration"]) == (0.5, 1.5, 1.0)
    assert list(df["session"]) == ["spk1", "spk2", "spk2"]  # defaults to the speaker
    assert list(df["gender"]) == ["F", "M", ""]
    assert df.loc["a", "text"] == "hello" and df.loc["b", "text"] == ""
    assert set(df["corpus"]) == {"list"}


def test_audio_root_and_column_map(corpus, tmp_path):
    csv = _csv(corpus / "meta.csv", "file,who,emotion,id\na.wav,s1,hap,u1\nb.wav,s1,neu,u2\n")
    df = prepare_corpus("csv", csv_path=csv, audio_root=corpus / "wav",
                        column_map={"file": "path", "who": "speaker", "emotion": "label", "id": "utt_id"})
    assert list(df["utt_id"]) == ["u1", "u2"] and list(df["label"]) == ["hap", "neu"]
    with pytest.raises(ConfigError, match="column_map"):
        prepare_csv_corpus(csv, column_map={"file": "wav_path"})


def test_missing_label_names_the_line(corpus):
    csv = _csv(corpus / "list.csv", "path,speaker,label\nwav/a.wav,s1,neu\nwav/b.wav,s1,\n")
    with pytest.raises(CorpusError, match=r"list.csv: empty 'label' \(line 3\)"):
        prepare_csv_corpus(csv)


def test_missing_speaker_names_the_line(corpus):
    csv = _csv(corpus / "list.csv", "path,speaker,label\nwav/a.wav, ,neu\n")
    with pytest.raises(CorpusError, match=r"empty 'speaker' \(line 2\)"):
        prepare_csv_corpus(csv)


def test_missing_file_names_file_and_line(corpus):
    csv = _csv(corpus / "list.csv", "path,speaker,label\nwav/a.wav,s1,neu\nwav/zzz.wav,s1,sad\n")
    with pytest.raises(CorpusError, match=r"line 3: .*wav/zzz.wav"):
        prepare_csv_corpus(csv)


def test_missing_required_column(corpus):
    csv = _csv(corpus / "list.csv", "path,label\nwav/a.wav,neu\n")
    with pytest.raises(CorpusError, match=r"required column\(s\) \['speaker'\]"):
        prepare_csv_corpus(csv)


def test_duplicate_default_ids_are_rejected(corpus):
    (corpus / "other").mkdir()
    sf.write(str(corpus / "other" / "a.wav"), np.zeros(SR, np.float32), SR)
    csv = _csv(corpus / "list.csv", "path,speaker,label\nwav/a.wav,s1,neu\nother/a.wav,s2,sad\n")
    with pytest.raises(CorpusError, match=r"utt_id not unique.*line 2, line 3"):
        prepare_csv_corpus(csv)


def test_bad_times(corpus):
    csv = _csv(corpus / "list.csv", "path,speaker,label,start,end\nwav/c.wav,s1,neu,1.0,\n")
    with pytest.raises(CorpusError, match="only one of start/end"):
        prepare_csv_corpus(csv)
    csv = _csv(corpus / "list.csv", "path,speaker,label,start,end\nwav/c.wav,s1,neu,1.0,0.5\n")
    with pytest.raises(CorpusError, match="end is not after start"):
        prepare_csv_corpus(csv)


def test_missing_csv(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        prepare_csv_corpus(tmp_path / "nope.csv")
