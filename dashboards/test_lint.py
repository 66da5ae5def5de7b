#!/usr/bin/env python3
"""Tests of lint.py: each check catches the defect it names, on a copy of the real dashboards.

    python3 -m unittest discover -s dashboards -p 'test_*.py'
"""

import contextlib
import io
import json
import pathlib
import shutil
import tempfile
import unittest

import generate
import lint

HERE = pathlib.Path(__file__).resolve().parent


class LintTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="rmm-lint-"))
        for p in HERE.glob("*.json"):
            shutil.copy(p, self.tmp / p.name)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_lint(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = lint.main(["--dir", str(self.tmp), *args])
        return rc, out.getvalue(), err.getvalue()

    def edit(self, name, fn):
        path = self.tmp / name
        data = json.loads(path.read_text())
        fn(data)
        path.write_text(json.dumps(data))

    @staticmethod
    def panel(data, title):
        return next(p for p in data["panels"] if p.get("title") == title)

    def assert_fails_with(self, message):
        rc, _, err = self.run_lint()
        self.assertEqual(rc, 1, err)
        self.assertIn(message, err)

    def test_real_dashboards_pass(self):
        rc, out, err = self.run_lint()
        self.assertEqual(rc, 0, err)
        self.assertIn("OK: 3 dashboards", out)

    def test_duplicate_panel_id(self):
        def dup(d):
            d["panels"][2]["id"] = d["panels"][1]["id"]
        self.edit("host.json", dup)
        self.assert_fails_with("host.json: panel id 2 used by both")

    def test_link_to_missing_dashboard(self):
        def bad(d):
            self.panel(d, "CPU by state")["links"][0]["url"] = "/d/no-such-uid/x?${host:queryparam}"
        self.edit("host.json", bad)
        self.assert_fails_with("links to dashboard uid 'no-such-uid', which does not exist")

    def test_link_passes_variable_target_does_not_define(self):
        def bad(d):
            link = self.panel(d, "CPU by state")["fieldConfig"]["defaults"]["links"][0]
            link["url"] += "&var-cluster=x"
        self.edit("host.json", bad)
        self.assert_fails_with("passes var-cluster, but rmm-host-processes defines no variable 'cluster'")

    def test_queryparam_of_variable_target_does_not_define(self):
        def bad(d):
            d["links"][0]["url"] = "/d/rmm-fleet/fleet?${host:queryparam}&${pid:queryparam}"
        self.edit("processes.json", bad)
        self.assert_fails_with("passes var-pid (via ${pid:queryparam}), but rmm-fleet defines no variable 'pid'")

    def test_custom_variable_value_must_exist(self):
        def bad(d):
            link = self.panel(d, "Memory by state")["fieldConfig"]["defaults"]["links"][0]
            link["url"] = link["url"].replace("var-sort=memory", "var-sort=disk")
        self.edit("host.json", bad)
        self.assert_fails_with("passes var-sort='disk', not one of ['cpu', 'memory']")

    def test_hard_coded_datasource(self):
        def bad(d):
            self.panel(d, "Uptime")["targets"][0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
        self.edit("host.json", bad)
        self.assert_fails_with("use the variable (uid ${datasource})")

    def test_datasource_variable_required(self):
        def bad(d):
            d["templating"]["list"] = [v for v in d["templating"]["list"] if v["name"] != "datasource"]
        self.edit("fleet.json", bad)
        rc, _, err = self.run_lint()
        self.assertEqual(rc, 1)
        self.assertIn("needs a variable 'datasource' of type datasource", err)

    def test_undefined_variable_in_query(self):
        def bad(d):
            self.panel(d, "Uptime")["targets"][0]["expr"] = 'system_uptime_seconds{cluster=~"$cluster"}'
        self.edit("host.json", bad)
        self.assert_fails_with("uses $cluster, which is not defined")

    def test_expected_empty_must_name_a_panel(self):
        path = self.tmp / "expected-empty.json"
        entries = json.loads(path.read_text())
        entries.append({"dashboard": "rmm-host", "panel": "Fan speeds", "ref_id": None, "reason": "no fans"})
        path.write_text(json.dumps(entries))
        self.assert_fails_with("rmm-host has no panel titled 'Fan speeds'")

    def test_list_queries_substitutes_everything(self):
        rc, out, err = self.run_lint("--list-queries", "--var", "client=acme", "--var", "site=hq",
                                     "--var", "host=web-01.example", "--var", "__range=3h")
        self.assertEqual(rc, 0, err)
        queries = json.loads(out)
        panels = [q for q in queries if q["kind"] == "panel"]
        variables = [q for q in queries if q["kind"] == "variable"]
        self.assertEqual(len(variables), 3 + 3 + 4)
        for q in queries:
            self.assertNotIn("$", q["expr"], q)
        # Multi/All values are regex-escaped as Grafana does; the range is the one given.
        fleet_cpu = next(q for q in panels if q["panel"].startswith("Hosts by CPU busy"))
        self.assertIn('host=~"web-01\\\\.example"', fleet_cpu["expr"])
        self.assertIn("[3h]", fleet_cpu["expr"])
        temps = next(q for q in panels if q["panel"] == "Temperatures")
        self.assertIn("sensors", temps["may_be_empty"])
        sort_key = next(q for q in panels if q["dashboard"] == "rmm-host-processes" and q["ref_id"] == "A")
        self.assertIn('__name__=~"process_cpu_.*"', sort_key["expr"])

    def test_list_queries_needs_single_value_variables(self):
        rc, _, err = self.run_lint("--list-queries")
        self.assertEqual(rc, 2)
        self.assertIn("give a value for host", err)


class GeneratedTest(unittest.TestCase):
    def test_committed_json_matches_generator(self):
        for name, build in generate.DASHBOARDS:
            committed = json.loads((HERE / name).read_text())
            self.assertEqual(committed, build(), f"{name} is stale: run python3 dashboards/generate.py")


if __name__ == "__main__":
    unittest.main()
