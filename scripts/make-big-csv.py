#!/usr/bin/env python3
"""Writes a large sales CSV for measuring how nano-analyst opens a big file in place.

    scripts/make-big-csv.py OUT.csv [SIZE_MIB]      (default 1024 MiB)

The rows are deterministic (a fixed seed), so two runs write the same file. Measure with:

    /usr/bin/time -v nano-analyst schema OUT.csv "total sales by country" --json
    /usr/bin/time -v nano-analyst ask OUT.csv "What is the total quantity sold per country?" --json

"Maximum resident set size" is the RSS; the file is read by DuckDB in place, so it should
stay far below the file's size. See docs/sources.md.
"""

import random
import sys

COUNTRIES = ["USA", "Canada", "Germany", "France", "Brazil", "India", "Japan", "Spain",
             "Italy", "United Kingdom", "Australia", "Mexico", "Netherlands", "Sweden"]
CATEGORIES = {
    "Books": ["Novel", "Atlas", "Cookbook", "Biography", "Poetry"],
    "Music": ["Vinyl", "CD", "Cassette", "Songbook"],
    "Garden": ["Rake", "Hose", "Seeds", "Planter", "Shears"],
    "Kitchen": ["Kettle", "Pan", "Knife", "Grater", "Mug"],
}


def rows(rng):
    order_id = 0
    while True:
        order_id += 1
        category = rng.choice(list(CATEGORIES))
        product = rng.choice(CATEGORIES[category])
        quantity = rng.randint(1, 20)
        price = rng.randint(99, 9999) / 100
        day = f"20{rng.randint(15, 24):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        yield (f"{order_id},{day},customer {rng.randint(1, 50000)},{rng.choice(COUNTRIES)},"
               f"{product},{category},{quantity},{price:.2f},{quantity * price:.2f}\n")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[1]
    target = int(sys.argv[2] if len(sys.argv) == 3 else 1024) << 20
    rng = random.Random(18)
    written = 0
    with open(out, "w", encoding="utf-8", newline="") as f:
        header = "order_id,order_date,customer,country,product,category,quantity,unit_price,total\n"
        f.write(header)
        written += len(header)
        batch = []
        for row in rows(rng):
            batch.append(row)
            written += len(row)
            if len(batch) == 10000 or written >= target:
                f.write("".join(batch))
                batch.clear()
                if written >= target:
                    break
    print(f"wrote {out}: {written / (1 << 20):.0f} MiB")


if __name__ == "__main__":
    main()
