from busybox as Build
run echo lower case works
Copy --link a /a
workdir /w
from build
