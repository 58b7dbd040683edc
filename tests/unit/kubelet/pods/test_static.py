"""Static pods as plain data: manifest parsing and defaulting, UID stability, the manifest dir
scan, the same-name gate, the source merge, mirror pod planning and the status routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from kube.apiserver import ApiClient, NotFound, PatchType, Preconditions
from kubelet.pods.model import PodUID
from kubelet.pods.source import CONFIG_MIRROR, PodConfig, PodSource
from kubelet.pods.static import (
    CONFIG_HASH,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    FileSource,
    ManifestError,
    MirrorPods,
    StaticPodSet,
    default_static_pod,
    load_manifest,
    mirror_pod_body,
    parse_manifest,
    plan_mirrors,
    read_manifests,
)
from kubelet.pods.status_manager import StatusManager

Json = dict[str, Any]
NODE = "node-a"
YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    ports: [{containerPort: 80}]
"""


def _load(text: str = YAML, filename: str = "/m/web.yaml", node: str = NODE) -> Json:
    return load_manifest(text, filename=filename, node=node)


# ---------------------------------------------------------------- parsing and defaulting


def test_defaults_like_upstream_file_source() -> None:
    pod = _load()
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "web-node-a"
    assert meta["namespace"] == "default"
    assert meta["labels"] == {"app": "web"}
    assert meta["annotations"][CONFIG_SOURCE] == "file"
    assert meta["annotations"][CONFIG_HASH] == meta["uid"]
    assert len(meta["uid"]) == 32
    assert spec["nodeName"] == NODE
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert "serviceAccountName" not in spec  # NodeRestriction refuses mirror pods with one
    assert {"operator": "Exists", "effect": "NoExecute"} in spec["tolerations"]
    [c] = spec["containers"]
    assert c["imagePullPolicy"] == "Always"  # no tag
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_keeps_what_the_manifest_sets() -> None:
    text = YAML.replace("  name: web\n", "  name: web\n  namespace: kube-system\n").replace(
        "image: busybox", "image: busybox:1.35"
    )
    pod = _load(text.replace("spec:\n", "spec:\n  restartPolicy: Never\n"))
    assert pod["metadata"]["namespace"] == "kube-system"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_json_manifest_is_the_same_pod_as_yaml() -> None:
    as_json = json.dumps(parse_manifest(YAML, "x"))
    assert _load(as_json)["metadata"]["uid"] == _load(YAML)["metadata"]["uid"]


def test_uid_is_stable_and_follows_content_node_and_file() -> None:
    uid = _load()["metadata"]["uid"]
    assert _load()["metadata"]["uid"] == uid
    assert _load(YAML.replace('"3600"', '"3601"'))["metadata"]["uid"] != uid
    assert _load(node="node-b")["metadata"]["uid"] != uid
    assert _load(filename="/m/other.yaml")["metadata"]["uid"] != uid


def test_an_explicit_uid_is_kept() -> None:
    pod = _load(YAML.replace("  name: web\n", "  name: web\n  uid: fixed-uid\n"))
    assert pod["metadata"]["uid"] == "fixed-uid"
    assert pod["metadata"]["annotations"][CONFIG_HASH] == "fixed-uid"


def test_defaulting_does_not_touch_its_input() -> None:
    raw = parse_manifest(YAML, "x")
    before = json.dumps(raw, sort_keys=True)
    default_static_pod(raw, node=NODE, source="x")
    assert json.dumps(raw, sort_keys=True) == before


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty manifest"),
        ("a: [b", "not YAML or JSON"),
        ("- 1\n- 2\n", "must be one object"),
        ("kind: Deployment\nmetadata: {name: x}\nspec: {}\n", "is not a v1 Pod"),
        ("kind: Pod\nspec: {}\n", "metadata.name is required"),
        ("kind: Pod\nmetadata: {name: x}\n", "spec is required"),
        ("kind: Pod\nmetadata: {name: x}\nspec: {}\n", "at least one container"),
        ("kind: Pod\nmetadata: {name: X_Y}\nspec: {containers: [{name: c, image: i}]}\n", "DNS"),
        ("kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c}]}\n", "image"),
        ("kind: Pod\n---\nkind: Pod\n", "not YAML or JSON"),
    ],
)
def test_bad_manifests_name_file_and_reason(text: str, reason: str) -> None:
    with pytest.raises(ManifestError) as err:
        _load(text, filename="/m/bad.yaml")
    assert reason in err.value.reason
    assert "/m/bad.yaml" in str(err.value)


# ---------------------------------------------------------------- the manifest dir


def test_read_manifests_skips_hidden_other_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(YAML)
    (tmp_path / "api.json").write_text(json.dumps(parse_manifest(YAML.replace("web", "api"), "")))
    (tmp_path / ".hidden.yaml").write_text(YAML.replace("web", "hidden"))
    (tmp_path / "notes.txt").write_text(YAML.replace("web", "txt"))
    (tmp_path / "bad.yml").write_text("kind: Pod\n")
    (tmp_path / "dup.yaml").write_text(YAML + "  restartPolicy: Never\n")
    pods, errors = read_manifests(tmp_path, NODE)
    names = sorted(p["metadata"]["name"] for p in pods.values())
    assert names == ["api-node-a", "web-node-a"]
    assert set(errors) == {str(tmp_path / "bad.yml"), str(tmp_path / "web.yaml")}
    assert "already defined by" in errors[str(tmp_path / "web.yaml")]  # dup.yaml sorts first


def test_path_may_be_one_file_or_missing(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(YAML)
    pods, errors = read_manifests(tmp_path / "web.yaml", NODE)
    assert len(pods) == 1 and not errors
    pods, errors = read_manifests(tmp_path / "nope", NODE)
    assert not pods and "does not exist" in errors[str(tmp_path / "nope")]


# ---------------------------------------------------------------- the same-name gate


def _pod(uid: str, name: str = "web-node-a", ns: str = "default") -> Json:
    return {"metadata": {"uid": uid, "name": name, "namespace": ns}, "spec": {}}


def test_changed_pod_waits_for_the_old_one_to_stop() -> None:
    s = StaticPodSet()
    running = {PodUID("old")}
    assert s.step({PodUID("old"): _pod("old")}, running.__contains__) == ([], [_pod("old")])
    removals, updates = s.step({PodUID("new"): _pod("new")}, running.__contains__)
    assert removals == ["old"] and updates == []
    assert s.step({PodUID("new"): _pod("new")}, running.__contains__) == ([], [])
    running.clear()
    assert s.step({PodUID("new"): _pod("new")}, running.__contains__) == ([], [_pod("new")])
    assert s.step({PodUID("new"): _pod("new")}, running.__contains__) == ([], [])


def test_other_names_are_not_held_back() -> None:
    s = StaticPodSet()
    s.step({PodUID("a"): _pod("a")}, lambda uid: True)
    desired = {PodUID("b"): _pod("b", "other")}
    assert s.step(desired, lambda uid: True) == (["a"], [_pod("b", "other")])


# ---------------------------------------------------------------- merging sources


class Sink:
    def __init__(self) -> None:
        self.pods: dict[PodUID, Json] = {}
        self.log: list[tuple[str, str]] = []

    def update(self, pod: Json) -> None:
        uid = PodUID(pod["metadata"]["uid"])
        self.pods[uid] = pod
        self.log.append(("update", uid))

    def remove(self, uid: PodUID) -> None:
        self.pods.pop(uid, None)
        self.log.append(("remove", uid))

    def known(self) -> set[PodUID]:
        return set(self.pods)


def test_merge_dedupes_by_uid_and_keeps_sources_apart() -> None:
    sink = Sink()
    config = PodConfig(sink)
    api, files = config.source("api"), config.source("file")
    api.update(_pod("u1", "a"))
    files.update(_pod("u2", "b"))
    files.update(_pod("u1", "dup"))  # owned by api: ignored
    assert sink.pods[PodUID("u1")]["metadata"]["name"] == "a"
    assert api.known() == {"u1"} and files.known() == {"u2"}
    files.remove(PodUID("u1"))  # not its pod
    assert PodUID("u1") in sink.pods
    api.remove(PodUID("u1"))
    assert sink.known() == {"u2"}
    files.update(_pod("u1", "now-file"))
    assert config.owner(PodUID("u1")) == "file"


class Mirrors:
    def __init__(self) -> None:
        self.synced: list[Json] = []
        self.events: list[tuple[str, str]] = []

    def mirrors_synced(self, pods: list[Json]) -> None:
        self.synced = pods

    def mirror_updated(self, pod: Json) -> None:
        self.events.append(("updated", pod["metadata"]["uid"]))

    def mirror_deleted(self, pod: Json) -> None:
        self.events.append(("deleted", pod["metadata"]["uid"]))


def _mirror(uid: str, hash_: str, name: str = "web-node-a", **meta: Any) -> Json:
    pod = _pod(uid, name)
    pod["metadata"].update(annotations={CONFIG_MIRROR: hash_}, **meta)
    return pod


def test_api_source_never_runs_mirror_pods_and_relist_spares_static_pods() -> None:
    sink, mirrors = Sink(), Mirrors()
    config = PodConfig(sink)
    config.source("file").update(_pod("static", "web-node-a"))
    source = PodSource(cast(ApiClient, None), NODE, config.source("api"), mirrors)
    source._sync([_pod("p1", "a"), _mirror("m1", "static")])
    assert sink.known() == {"static", "p1"}
    assert [m["metadata"]["uid"] for m in mirrors.synced] == ["m1"]
    source._event("MODIFIED", _mirror("m1", "static"))
    source._event("DELETED", _mirror("m1", "static"))
    source._sync([])
    assert sink.known() == {"static"}
    assert mirrors.events == [("updated", "m1"), ("deleted", "m1")]


# ---------------------------------------------------------------- mirror pods


def test_mirror_body_is_what_node_restriction_allows() -> None:
    pod = _load()
    body = mirror_pod_body(pod, node=NODE, node_uid="node-uid")
    meta = body["metadata"]
    assert "uid" not in meta
    assert meta["name"] == "web-node-a" and meta["namespace"] == "default"
    assert meta["annotations"][CONFIG_MIRROR] == pod["metadata"]["uid"]
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": "node-uid", "controller": True}
    ]
    assert body["spec"]["nodeName"] == NODE
    assert "serviceAccountName" not in body["spec"]


def _static(uid: str, name: str = "web-node-a") -> Json:
    pod = _pod(uid, name)
    pod["metadata"]["annotations"] = {CONFIG_HASH: uid, CONFIG_SOURCE: "file"}
    return pod


def test_plan_mirrors() -> None:
    s = {"default/web-node-a": _static("s1")}
    plan = plan_mirrors(s, {}, cleanup=True)
    assert plan.create == (s["default/web-node-a"],) and plan.bind == {"s1": None}
    ok = {"default/web-node-a": _mirror("m1", "s1")}
    plan = plan_mirrors(s, ok, cleanup=True)
    assert plan.bind == {"s1": "m1"} and not plan.create and not plan.delete
    stale = {"default/web-node-a": _mirror("m1", "older")}
    plan = plan_mirrors(s, stale, cleanup=False)
    assert plan.delete == (stale["default/web-node-a"],) and len(plan.create) == 1
    going = {"default/web-node-a": _mirror("m1", "s1", deletionTimestamp="2024-01-01T00:00:00Z")}
    assert len(plan_mirrors(s, going, cleanup=False).delete) == 1
    orphan = {"default/gone-node-a": _mirror("m2", "x", "gone-node-a")}
    assert not plan_mirrors(s, orphan, cleanup=False).delete
    assert plan_mirrors(s, orphan, cleanup=True).delete == (orphan["default/gone-node-a"],)


class FakeApi:
    """The few apiserver calls the mirror pods and the status writer make."""

    def __init__(self) -> None:
        self.pods: dict[str, Json] = {}
        self.calls: list[tuple[str, str]] = []
        self.patches: list[tuple[str, Json]] = []
        self.n = 0

    async def get(self, resource: Any, name: str, *, namespace: str | None = None) -> Json:
        if resource.plural == "nodes":
            return {"metadata": {"name": name, "uid": "node-uid"}}
        if name not in self.pods:
            raise NotFound(code=404, reason="NotFound", message="nope")
        return self.pods[name]

    async def create(self, resource: Any, obj: Json, *, namespace: str | None = None) -> Json:
        self.n += 1
        created: Json = json.loads(json.dumps(obj))
        created["metadata"]["uid"] = f"mirror-{self.n}"
        self.pods[obj["metadata"]["name"]] = created
        self.calls.append(("create", created["metadata"]["uid"]))
        return created

    async def delete(
        self,
        resource: Any,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Preconditions | None = None,
    ) -> Json:
        assert grace_period_seconds == 0 and preconditions is not None
        pod = self.pods.get(name)
        if pod is None or pod["metadata"]["uid"] != preconditions.uid:
            raise NotFound(code=404, reason="NotFound", message="nope")
        del self.pods[name]
        self.calls.append(("delete", str(preconditions.uid)))
        return {}

    async def patch(
        self,
        resource: Any,
        name: str,
        patch: Json,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
    ) -> Json:
        pod = self.pods.get(name)
        if pod is None or pod["metadata"]["uid"] != patch["metadata"]["uid"]:
            raise NotFound(code=404, reason="NotFound", message="nope")
        self.patches.append((patch["metadata"]["uid"], patch["status"]))
        return pod


async def test_mirror_lifecycle_and_status_routing() -> None:
    api, sink = FakeApi(), Sink()
    client = cast(ApiClient, api)
    status = StatusManager(client)
    mirrors = MirrorPods(client, NODE, status, sink)
    pod = _load()
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    mirrors.update(pod)
    assert sink.known() == {uid}
    status.set(namespace="default", name=name, uid=uid, status={"phase": "Running"})
    await status.flush(uid)
    assert api.patches == []  # held: no mirror yet
    mirrors.mirrors_synced([])
    mirrors.files_ready()
    await mirrors.reconcile()
    assert api.calls == [("create", "mirror-1")]
    assert api.pods[name]["metadata"]["annotations"][CONFIG_MIRROR] == uid
    await status.flush(uid)
    assert api.patches == [("mirror-1", {"phase": "Running"})]
    # someone deletes the mirror pod: it comes back and gets the whole status again
    gone = api.pods.pop(name)
    mirrors.mirror_deleted(gone)
    mirrors.mirror_updated(gone)  # a late event about it changes nothing
    await mirrors.reconcile()
    assert api.calls[-1] == ("create", "mirror-2")
    await status.flush(uid)
    assert api.patches[-1] == ("mirror-2", {"phase": "Running"})
    assert sink.log == [("update", uid)]  # the static pod itself was never touched
    # the manifest goes: the static pod is removed and its mirror deleted
    mirrors.remove(PodUID(uid))
    await mirrors.reconcile()
    assert api.calls[-1] == ("delete", "mirror-2") and not api.pods
    assert sink.log[-1] == ("remove", uid)


async def test_orphan_mirrors_wait_for_the_first_file_scan() -> None:
    api, sink = FakeApi(), Sink()
    client = cast(ApiClient, api)
    mirrors = MirrorPods(client, NODE, StatusManager(client), sink)
    old = _mirror("m-old", "h", "old-node-a")
    api.pods["old-node-a"] = old
    mirrors.mirrors_synced([old])
    await mirrors.reconcile()
    assert api.calls == []
    mirrors.files_ready()
    await mirrors.reconcile()
    assert api.calls == [("delete", "m-old")]


async def test_file_source_feeds_changes_and_stamps_seen_once(tmp_path: Path) -> None:
    sink = Sink()
    ready: list[bool] = []
    src = FileSource(
        tmp_path,
        NODE,
        sink,
        active=lambda uid: uid in sink.known(),
        on_ready=lambda: ready.append(True),
    )
    await src.tick()
    assert ready == [True] and not sink.pods
    (tmp_path / "web.yaml").write_text(YAML)
    await src.tick()
    [(uid, pod)] = sink.pods.items()
    seen = pod["metadata"]["annotations"][CONFIG_SEEN]
    await src.tick()
    assert sink.log == [("update", uid)]
    assert pod["metadata"]["annotations"][CONFIG_SEEN] == seen
    (tmp_path / "web.yaml").write_text(YAML.replace('"3600"', '"7200"'))
    await src.tick()  # old removed; the new one waits until the old is no longer active
    assert sink.log[-1] == ("remove", uid) and not sink.pods
    await src.tick()
    [new_uid] = sink.pods
    assert new_uid != uid
    (tmp_path / "web.yaml").unlink()
    await src.tick()
    assert sink.log[-1] == ("remove", new_uid)


async def test_status_of_ordinary_pods_is_unchanged() -> None:
    api = FakeApi()
    api.pods["p"] = _pod("p-uid", "p")
    status = StatusManager(cast(ApiClient, api))
    status.set(namespace="default", name="p", uid="p-uid", status={"phase": "Running"})
    await status.flush("p-uid")
    assert api.patches == [("p-uid", {"phase": "Running"})]
