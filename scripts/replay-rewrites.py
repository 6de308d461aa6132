#!/usr/bin/env python3
"""Replays a build's rewrite chain over the final queries of an earlier `eval` run and
scores each query the chain changes against the gold query.

    scripts/replay-rewrites.py RUN.jsonl NANO_ANALYST --db-dir DIR
    scripts/replay-rewrites.py RUN.jsonl NANO_ANALYST --db FILE.sqlite

RUN.jsonl is an `eval --out` file; NANO_ANALYST the binary whose rules are screened. The
predictions are written as a data set and given to `nano-analyst rewrites audit --json`;
for every query whose result the chain changes, the rewritten query is run and compared
with the gold one (rows as a multiset, as an ordered list when the gold query has ORDER
BY, output columns in any order), and the line says GAIN, LOSS, same-right or same-wrong.

This is a screen, not a measurement: the model would have seen the rewritten query's
result (or error) in a real run, and a rule that changes a first attempt changes what
follows. Figures in docs/ come from `eval` runs; this only says which rules are worth one.
Run the gold audit (`rewrites audit` on the gold data sets) as well: a rule that changes a
right answer does not go in, whatever this shows.
"""

import collections
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("--db-dir", "--db"):
        sys.exit(__doc__)
    run, binary, flag, where = sys.argv[1:]
    by_dir = flag == "--db-dir"
    records = [json.loads(line) for line in open(run)]
    records = [r for r in records if r.get("predicted_sql")]
    audit = run_audit(records, binary, flag, where, by_dir)

    def db_path(db_id):
        return os.path.join(where, db_id, db_id + ".sqlite") if by_dir else where

    def key(db_id, question):
        return (db_id if by_dir else "", question)

    by_question = {key(r["db_id"], r["question"]): r for r in records}
    counts = collections.Counter()
    for line in audit:
        record = by_question.get(key(line["db_id"], line["question"]))
        if record is None or not line["rules_fired"] or not line["changed"]:
            continue
        gold = rows(db_path(record["db_id"]), record["gold_sql"])
        rewritten = rows(db_path(record["db_id"]), line["rewritten_sql"])
        right = same(gold, rewritten, "order by" in record["gold_sql"].lower())
        was_right = record["correct"]
        if right and not was_right:
            tag = "GAIN"
        elif was_right and not right:
            tag = "LOSS"
        else:
            tag = "same-right" if right else "same-wrong"
        counts[tag] += 1
        print(tag, record["db_id"], "|", record["question"], line["rules_fired"])
        print("    before:", one_line(record["predicted_sql"]))
        print("    after: ", one_line(line["rewritten_sql"]))
    print(f"{run}: {sum(counts.values())} changed, {counts['GAIN']} gained, "
          f"{counts['LOSS']} lost")


def run_audit(records, binary, flag, where, by_dir):
    """`rewrites audit --json` over the predictions, one parsed line per query."""
    with tempfile.TemporaryDirectory() as tmp:
        if by_dir:
            dataset = os.path.join(tmp, "predictions.json")
            with open(dataset, "w") as out:
                json.dump([{"db_id": r["db_id"], "question": r["question"],
                            "query": r["predicted_sql"]} for r in records], out)
        else:
            dataset = os.path.join(tmp, "predictions.jsonl")
            with open(dataset, "w") as out:
                for r in records:
                    out.write(json.dumps({"question": r["question"],
                                          "query": r["predicted_sql"]}) + "\n")
        done = subprocess.run(
            [binary, "rewrites", "audit", "--dataset", dataset, flag, where, "--json"],
            capture_output=True, text=True)
    # The audit exits 1 when some result changed, which is what is screened here.
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.exit(f"rewrites audit failed: {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def rows(path, sql):
    """The query's rows, read-only; None when it fails."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.text_factory = lambda raw: raw.decode(errors="replace")
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def same(gold, predicted, ordered):
    if gold is None or predicted is None or len(gold) != len(predicted):
        return False
    if not gold:
        return True
    width = len(gold[0])
    if width != len(predicted[0]):
        return False
    gold = [tuple(map(rounded, row)) for row in gold]
    predicted = [tuple(map(rounded, row)) for row in predicted]
    # Output columns in any order; past 6 columns only the order as written is tried.
    orders = itertools.permutations(range(width)) if width <= 6 else [range(width)]
    for order in orders:
        permuted = [tuple(row[i] for i in order) for row in predicted]
        if ordered and gold == permuted:
            return True
        if not ordered and collections.Counter(gold) == collections.Counter(permuted):
            return True
    return False


def rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def one_line(sql):
    return " ".join(sql.split())


if __name__ == "__main__":
    main()
