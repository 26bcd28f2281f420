"""The object tree: objects, their instances and resource handlers."""

from lwm2md.objects.tree import LwM2MObject, ObjectInstance, ObjectTree

__all__ = ["LwM2MObject", "ObjectInstance", "ObjectTree"]
