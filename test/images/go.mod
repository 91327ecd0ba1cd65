module vmgpu.test/images

go 1.24
