"""Test generators for generated.yaml: promptfoo calls them with no argument, or with the config given beside `path`."""


def generate_tests(config=None):
    cities = (config or {}).get("cities", ["Paris", "Oslo"])
    return [{"description": f"about {c}", "vars": {"city": c}, "assert": [{"type": "contains", "value": c[:3]}, {"type": "icontains", "value": "TRAVEL"}]}
            for c in cities]


def edge_cases():
    return [{"vars": {"city": "Rome"}, "assert": [{"type": "equals", "value": "Rome"}]},
            {"vars": {"city": "Lima"}, "assert": [{"type": "not-contains", "value": "Lima"}]},
            {"vars": {"city": "Kyiv"}, "threshold": 0.5, "assert": [{"type": "contains", "value": "Kyiv"}, {"type": "contains", "value": "absent"}]}]
