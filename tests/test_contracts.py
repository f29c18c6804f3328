"""The .proto files are the API reference: every service, RPC, message,
field and enum value in ace/v1 carries a comment, and that comment reaches
users through reflection (the descriptor set make protos writes)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from services.common.reflection import DESCRIPTOR_SET

# Paths inside FileDescriptorProto (descriptor.proto field numbers).
MESSAGE, ENUM, SERVICE = 4, 5, 6
FIELD, NESTED, NESTED_ENUM = 2, 3, 4
VALUE, METHOD = 2, 2


class FileCheck:
    def __init__(self, f: descriptor_pb2.FileDescriptorProto) -> None:
        self.name = f.name
        self.missing: list[str] = []
        self.comments = {
            tuple(loc.path): (loc.leading_comments + loc.trailing_comments).strip()
            for loc in f.source_code_info.location
        }
        for i, m in enumerate(f.message_type):
            self.message(m, (MESSAGE, i), "")
        for i, e in enumerate(f.enum_type):
            self.enum(e, (ENUM, i), "")
        for i, s in enumerate(f.service):
            self.need((SERVICE, i), s.name)
            for j, rpc in enumerate(s.method):
                self.need((SERVICE, i, METHOD, j), f"{s.name}.{rpc.name}")

    def need(self, path: tuple[int, ...], name: str) -> None:
        if not self.comments.get(path):
            self.missing.append(f"{self.name}: {name}")

    def message(self, m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        name = f"{prefix}{m.name}"
        self.need(path, name)
        for i, fd in enumerate(m.field):
            self.need((*path, FIELD, i), f"{name}.{fd.name}")
        for i, nested in enumerate(m.nested_type):
            if not nested.options.map_entry:
                self.message(nested, (*path, NESTED, i), f"{name}.")
        for i, e in enumerate(m.enum_type):
            self.enum(e, (*path, NESTED_ENUM, i), f"{name}.")

    def enum(self, e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], prefix: str) -> None:
        self.need(path, f"{prefix}{e.name}")
        for i, v in enumerate(e.value):
            if not v.name.endswith("_UNSPECIFIED"):
                self.need((*path, VALUE, i), f"{prefix}{e.name}.{v.name}")


def undocumented() -> list[str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file
    return [m for f in files if f.name.startswith("ace/v1/") for m in FileCheck(f).missing]


def test_every_element_of_the_contracts_is_documented():
    assert undocumented() == []
