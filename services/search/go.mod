module github.com/stampede-shop/stampede/services/search

go 1.26.0


