#!/usr/bin/python3
# Parses a Prometheus text exposition with prometheus_client's parser and prints one canonical "name{k="v",...} value" line per sample.
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    for family in text_string_to_metric_families(text):
        print("# family %s %s" % (family.name, family.type))
        for s in family.samples:
            labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
            print("%s{%s} %r" % (s.name, labels, float(s.value)))


if __name__ == "__main__":
    main()
