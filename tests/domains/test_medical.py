import copy

import pytest

from course_lib.domains import MedicalRerankingSystem
from course_lib.rerank import AdvancedReranker


def test_specialty_detection_uses_whole_words():
    assert MedicalRerankingSystem.detect_specialty("new onset seizure and headache") == "neurology"
    assert MedicalRerankingSystem.detect_specialty("ECG shows arrhythmia") == "cardiology"
    assert MedicalRerankingSystem.detect_specialty("brainstorming session notes") == "general"  # not 'brain'


def test_medical_safety_exclusions_are_reported(overlap_scorer):
    system = MedicalRerankingSystem(AdvancedReranker(scorer=overlap_scorer), thresholds={"general": 0.0, "cardiology": 0.0})
    cands = [
        {"id": "1", "text": "aspirin for heart attack prevention", "contraindications": ["warfarin"]},
        {"id": "2", "text": "statins for heart disease prevention"},
    ]
    before = copy.deepcopy(cands)
    res = system.rerank_medical_query("heart attack prevention", {"medications": ["Warfarin"], "age": 70}, cands)
    assert res.specialty == "cardiology" and "age 70" in res.query
    assert [r["id"] for r in res.results] == ["2"]
    assert res.excluded[0]["id"] == "1" and "warfarin" in res.excluded[0]["excluded_because"]
    assert cands == before


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_patient_context_does_not_make_an_empty_query_valid(overlap_scorer):
    system = MedicalRerankingSystem(AdvancedReranker(scorer=overlap_scorer), thresholds={"general": 0.0})
    cands = [{"id": "1", "text": "diabetes diet advice"}, {"id": "2", "text": "bananas"}]
    for query in ("", "   "):
        with pytest.raises(ValueError):
            system.rerank_medical_query(query, {"conditions": ["diabetes"]}, cands)
    assert overlap_scorer.calls == 0  # rejected before any scoring


def test_a_single_string_field_is_one_item_not_its_characters():
    assert MedicalRerankingSystem.enhance_query("q", {"medications": "warfarin"}) == "q warfarin"
    assert MedicalRerankingSystem.enhance_query("q", {"conditions": "diabetes", "medications": ["warfarin"]}) == "q diabetes warfarin"
    passage = {"text": "aspirin", "contraindications": ["warfarin"]}
    assert "warfarin" in MedicalRerankingSystem.safety_check(passage, {"medications": "Warfarin"})
    assert MedicalRerankingSystem.safety_check(passage, {"medications": "metformin"}) is None


@pytest.mark.parametrize("ctx", [{"conditions": 5}, {"medications": {"warfarin": "5mg"}}, {"conditions": ["ok", 3]}])
def test_a_field_that_is_neither_string_nor_list_is_a_type_error(ctx):
    with pytest.raises(TypeError):
        MedicalRerankingSystem.enhance_query("q", ctx)
    with pytest.raises(TypeError):
        MedicalRerankingSystem.safety_check({"text": "x", "contraindications": ["warfarin"]}, ctx)


# --- consumer questions, specialty prototypes, thresholds with abstention -----------------------

def test_cleaning_keeps_the_question_when_the_story_is_long():
    from course_lib.domains.medical import clean_consumer_question

    story = " ".join(["My husband has been on a machine at night for two years and it is hard."] * 6)
    msg = f"sleep apnea. Hello. {story} Is there a surgery for sleep apnea? Thanks in advance"
    out = clean_consumer_question(msg, max_words=30)
    assert out.startswith("sleep apnea. Is there a surgery for sleep apnea?")
    assert "Hello" not in out and "Thanks" not in out and len(out.split()) <= 30
    assert " ".join(msg.split()[:30]).count("?") == 0  # a plain cap would have lost the question
    assert clean_consumer_question("Dementia. Is dementia genetic?") == "Dementia. Is dementia genetic?"
    with pytest.raises(TypeError):
        clean_consumer_question(None)


def test_specialty_detector_combines_prototypes_and_keywords():
    import numpy as np

    from course_lib.domains.medical import SpecialtyDetector

    det = SpecialtyDetector.from_vectors(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), ["oncology", "neurology", "general"],
                                         keywords={"neurology": ["seizure"]}, keyword_weight=0.7)
    assert det.names == ["neurology", "oncology"]  # no prototype for the fallback
    vecs = np.array([[0.9, 0.3], [0.9, 0.3]])
    assert det.predict_vectors(vecs, ["tumour growth", "a seizure after chemo"]) == ["oncology", "neurology"]
    with pytest.raises(ValueError):
        SpecialtyDetector.from_vectors(np.ones((2, 2)), ["general", "general"])


def test_abstention_is_an_explicit_result_and_context_can_stay_out_of_the_query(overlap_scorer):
    system = MedicalRerankingSystem(AdvancedReranker(scorer=overlap_scorer), thresholds={"general": 0.99},
                                    context_in_query=False)
    res = system.rerank_medical_query("bananas and diabetes", {"conditions": ["diabetes"]},
                                      [{"id": "1", "text": "unrelated text"}])
    assert res.abstained and res.results == [] and res.query == "bananas and diabetes"
    easy = MedicalRerankingSystem(AdvancedReranker(scorer=overlap_scorer), thresholds={"general": 0.0})
    assert not easy.rerank_medical_query("bananas", None, [{"id": "1", "text": "bananas"}]).abstained
