module github.com/stampede-shop/stampede/loadtest

go 1.26.0


