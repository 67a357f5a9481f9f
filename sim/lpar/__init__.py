"""The emulated IBM Z LPAR: the KVM host the pod VMs of the ``lpar`` target run on.

On a real LinuxONE the pod VMs are libvirt guests on an LPAR; here the LPAR is this machine
(libvirt's test driver, or libvirtd with QEMU emulating s390x), and the pod VM is a small
s390x image built from Debian packages plus the project's own agent. Each module has one
job: host setup, the image's assets, the domain XML, the cloud-init disk, the console
report, and the LPAR prerequisites.
"""
