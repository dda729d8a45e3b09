"""LongBench v1 tasks: official templates and lengths, the loader on fixtures in the official record format, middle
truncation, the first-line rule, LongBench-E buckets, the RePo variant, and bad input."""
import json

import pytest

from posbench.harness.evaluation.data import default_data_root
from posbench.tasks import MissingData, TaskError, aggregate, build_samples, score_sample

SHARED = default_data_root()

# config/dataset2prompt.json (THUDM/LongBench @ 2e00731, as reproduced in longbench.md; Chinese entries from the same
# file), as JSON string literals.
OFFICIAL_PROMPTS = json.loads(r'''{
"narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
"qasper": "You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
"multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
"multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：{input}\n回答：",
"hotpotqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
"2wikimqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
"musique": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
"dureader": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
"gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
"qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
"multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
"vcsum": "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
"trec": "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}",
"triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}",
"samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}",
"lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
"passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",
"passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ",
"passage_retrieval_zh": "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n{input}\n\n请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是：",
"lcc": "Please complete the code given below. \n{context}Next line of code:\n",
"repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n"
}''')  # noqa: E501  (verbatim data)
# config/dataset2maxlen.json and eval.py's dataset2metric.
OFFICIAL = {"narrativeqa": (128, "qa_f1_score"), "qasper": (128, "qa_f1_score"), "multifieldqa_en": (64, "qa_f1_score"),
            "multifieldqa_zh": (64, "qa_f1_zh_score"), "hotpotqa": (32, "qa_f1_score"), "2wikimqa": (32, "qa_f1_score"),
            "musique": (32, "qa_f1_score"), "dureader": (128, "rouge_zh_score"), "gov_report": (512, "rouge_score"),
            "qmsum": (512, "rouge_score"), "multi_news": (512, "rouge_score"), "vcsum": (512, "rouge_zh_score"),
            "trec": (64, "classification_score"), "triviaqa": (32, "qa_f1_score"), "samsum": (128, "rouge_score"),
            "lsht": (64, "classification_score"), "passage_count": (32, "count_score"),
            "passage_retrieval_en": (32, "retrieval_score"), "passage_retrieval_zh": (32, "retrieval_zh_score"),
            "lcc": (64, "code_sim_score"), "repobench-p": (64, "code_sim_score")}
E_DATASETS = ["qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "gov_report", "multi_news", "trec", "triviaqa",
              "samsum", "passage_count", "passage_retrieval_en", "lcc", "repobench-p"]
ZH = {"multifieldqa_zh", "dureader", "vcsum", "lsht", "passage_retrieval_zh"}
LENGTHS = (4096, 8192, 16384)


def record(name, i, context, length, answers=None, suffix=""):
    zh = name in ZH
    classes = ["Human", "Location", "Abbreviation"] if name in ("trec", "lsht") else None
    return {"input": "问题？" if zh else f"Question {i}?", "context": context, "answers": answers or ["Human"],
            "length": length, "dataset": name + suffix, "language": "zh" if zh else "en", "all_classes": classes,
            "_id": f"{name}-{i}"}


@pytest.fixture(scope="module")
def longbench_dir(tmp_path_factory):
    """Official-format jsonl files: a short record and one far over 16K tokens (its middle must be cut)."""
    root = tmp_path_factory.mktemp("longbench")
    for name in OFFICIAL:
        word = "北京" if name in ZH else "river"
        long_context = "BEGIN " + " ".join([word] * 18000) + " FINISH"
        for suffix, lengths in (("", (120, 19000)), ("_e", (3999, 8000))):
            if suffix and name not in E_DATASETS:
                continue
            rows = [record(name, 0, "A short context.", lengths[0], suffix=suffix),
                    record(name, 1, long_context, lengths[1], suffix=suffix)]
            (root / f"{name}{suffix}.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    return root


def test_templates_lengths_and_metrics_are_official(registry):
    for name, (max_new, metric) in OFFICIAL.items():
        for task in [f"longbench_{name}"] + ([f"longbench_{name}_e"] if name in E_DATASETS else []):
            spec = registry.get(task)
            assert spec.template == OFFICIAL_PROMPTS[name], task
            assert spec.new_tokens(4096) == max_new and spec.metrics == (metric,), task
            assert spec.truncation == "middle"
            assert spec.postprocess == (("first_line",) if name in ("trec", "triviaqa", "samsum", "lsht") else ())
    assert len(registry.resolve("longbench")) == 21 and len(registry.resolve("longbench_e")) == 13
    assert "narrativeqa" in OFFICIAL_PROMPTS and "asconcisely" in OFFICIAL_PROMPTS["narrativeqa"]


@pytest.mark.parametrize("tasks", [
    "longbench_qasper,longbench_lsht,longbench_repo_narrativeqa",
    pytest.param("longbench,longbench_e,longbench_repo", marks=pytest.mark.slow),    # all 42, about 10 s
])
def test_tasks_build_within_budget_with_middle_truncation(registry, tokenizer, longbench_dir, tasks):
    paths = {"longbench": str(longbench_dir)}
    for spec in registry.resolve(tasks):
        head, after = spec.template.split("{context}")
        zh = spec.name.replace("longbench_", "").replace("repo_", "").removesuffix("_e") in ZH
        after = after.format(input="问题？" if zh else "Question 1?")   # the end of the prompt, after the context
        for length in LENGTHS:
            short, long = build_samples(spec, tokenizer, length=length, data_paths=paths)
            assert short.skip_reason is None and "A short context." in short.prompt
            assert long.token_count <= length - long.max_new_tokens, (spec.name, length)
            assert "FINISH" in long.prompt and long.token_count > 0.9 * (length - long.max_new_tokens)
            if spec.truncation == "middle":      # the instruction and the question both survive
                assert long.prompt.startswith(head + "BEGIN"), spec.name
            else:                                 # left: the RePo authors cut the start
                assert "BEGIN" not in long.prompt, spec.name
            assert long.prompt.endswith("FINISH" + after), spec.name


def test_prompt_is_the_template_with_record_fields(registry, tokenizer, longbench_dir):
    s = build_samples(registry.get("longbench_qasper"), tokenizer, length=4096,
                      data_paths={"longbench": str(longbench_dir)})[0]
    assert s.prompt == OFFICIAL_PROMPTS["qasper"].format(context="A short context.", input="Question 0?")
    assert s.metadata["_id"] == "qasper-0" and s.metadata["length"] == 120 and s.metadata["bucket"] == "0-4k"
    trec = build_samples(registry.get("longbench_trec"), tokenizer, length=4096,
                         data_paths={"longbench": str(longbench_dir)})[0]
    assert trec.metadata["all_classes"] == ["Human", "Location", "Abbreviation"]


def test_longbench_e_buckets_use_the_length_field(registry, tokenizer, longbench_dir):
    samples = build_samples(registry.get("longbench_trec_e"), tokenizer, length=8192,
                            data_paths={"longbench": str(longbench_dir)})
    assert [s.metadata["bucket"] for s in samples] == ["0-4k", "8k+"]      # length 3999 and 8000
    from posbench.tasks.longbench.loader import length_bucket
    assert [length_bucket(x) for x in (0, 3999, 4000, 7999, 8000)] == ["0-4k", "0-4k", "4-8k", "4-8k", "8k+"]


def test_first_line_rule_and_aggregate(registry, tokenizer, longbench_dir):
    paths = {"longbench": str(longbench_dir)}
    trec = registry.get("longbench_trec")
    s = build_samples(trec, tokenizer, length=4096, data_paths=paths)[0]
    # first line after leading newlines is 'Human' -> matches ['Human'] only -> 1.0 (the whole text would give 1/2)
    assert score_sample(trec, s, "\n\nHuman\nLocation") == {"classification_score": 1.0}
    trivia = registry.get("longbench_triviaqa")
    t = build_samples(trivia, tokenizer, length=4096, data_paths=paths)[0]
    assert score_sample(trivia, t, "\nHuman\nthe rest") == {"qa_f1_score": 1.0}
    qasper = registry.get("longbench_qasper")
    q = build_samples(qasper, tokenizer, length=4096, data_paths=paths)[0]
    # no first-line rule: 'human the rest' -> tokens [human, rest]: P = 1/2, R = 1 -> 2/3
    assert score_sample(qasper, q, "\nHuman\nthe rest")["qa_f1_score"] == pytest.approx(2 / 3)
    assert aggregate(qasper, [{"qa_f1_score": 2 / 3}, {"qa_f1_score": 1.0}, {"qa_f1_score": 0.0}]) == \
        {"qa_f1_score": 55.56}                                      # round(100 * (5/3)/3, 2)


def test_repo_variant_prompts(registry, tokenizer, longbench_dir):
    paths = {"longbench": str(longbench_dir)}
    generic = ("Write a high-quality answer for the given query using only the provided context information.\n\n"
               "## Context\n{context}\n\nQuery: {question}\nAnswer:")
    s = build_samples(registry.get("longbench_repo_2wikimqa"), tokenizer, length=16384, data_paths=paths)[0]
    assert s.prompt == generic.format(context="A short context.", question="Question 0?")
    g = build_samples(registry.get("longbench_repo_gov_report"), tokenizer, length=16384, data_paths=paths)[0]
    assert g.prompt.endswith("Query: Summarize the given context into a paragraph.\nAnswer:")
    t = build_samples(registry.get("longbench_repo_trec"), tokenizer, length=16384, data_paths=paths)[0]
    assert t.prompt == "A short context.\nQuestion 0?" and t.stop == ["\n\n", "\n"] and t.max_new_tokens == 32
    assert registry.get("longbench_repo_qmsum").new_tokens(16384) == 512
    assert len(registry.resolve("longbench_repo")) == 8


def test_missing_file_is_missing_data(registry, tokenizer, tmp_path):
    with pytest.raises(MissingData, match=r"qasper.jsonl not found.*--data longbench=DIR"):
        build_samples(registry.get("longbench_qasper"), tokenizer, length=4096, data_paths={"longbench": str(tmp_path)})


@pytest.mark.parametrize("line, message", [
    ('{"input": "q"}', r"qasper.jsonl:1: record has no field 'context'"),
    ("not json", r"qasper.jsonl:1: not valid JSON"),
    (json.dumps(record("qasper", 0, "c", 10) | {"answers": "Human"}), r"field 'answers' has the wrong type"),
    (json.dumps(record("qasper", 0, "c", 10) | {"length": "10"}), r"field 'length' has the wrong type"),
])
def test_bad_records_name_file_line_and_field(registry, tokenizer, tmp_path, line, message):
    (tmp_path / "qasper.jsonl").write_text(line + "\n")
    with pytest.raises(TaskError, match=message):
        build_samples(registry.get("longbench_qasper"), tokenizer, length=4096, data_paths={"longbench": str(tmp_path)})


def test_classification_records_need_all_classes(registry, tokenizer, tmp_path):
    (tmp_path / "trec.jsonl").write_text(json.dumps(record("qasper", 0, "c", 10)) + "\n")   # all_classes: null
    with pytest.raises(TaskError, match="has no 'all_classes'"):
        build_samples(registry.get("longbench_trec"), tokenizer, length=4096, data_paths={"longbench": str(tmp_path)})
